"""Optional third opinion for ``curate``: a judge that looks at a rendered animation.

The paper's authors filtered Objaverse animations partly by eye; a vision-language model can take
that role. Nothing here calls a network: ``none`` keeps everything, and ``vlm`` is a stub that
says it is not configured. To add a real judge, implement :class:`AnimationJudge` (for example,
send a contact sheet of ``view_00`` frames and the features to your model) and add it to
:data:`JUDGES`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable


@runtime_checkable
class AnimationJudge(Protocol):
    """Decides about one rendered animation that the rules and the classifier kept."""

    def judge(self, asset_dir: Path, features: dict[str, float]) -> tuple[bool, str]:
        """``(keep, reason)``; ``reason`` is written to ``rejected.txt`` when ``keep`` is False."""
        ...


class NoJudge:
    """``--judge none``: keeps every animation."""

    def judge(self, asset_dir: Path, features: dict[str, float]) -> tuple[bool, str]:
        return True, ""


class VisionLanguageJudge:
    """``--judge vlm``: placeholder for a vision-language judge; raises until one is configured."""

    def judge(self, asset_dir: Path, features: dict[str, float]) -> tuple[bool, str]:
        raise RuntimeError(
            "the vision-language judge is not configured: implement AnimationJudge.judge in "
            "backend/data/judges.py (no model or endpoint ships with Puppet Master), or use --judge none"
        )


JUDGES: dict[str, type] = {"none": NoJudge, "vlm": VisionLanguageJudge}


def make_judge(name: str) -> AnimationJudge:
    """The judge registered as ``name``."""
    if name not in JUDGES:
        raise ValueError(f"unknown judge {name!r}; choose one of {sorted(JUDGES)}")
    return JUDGES[name]()
