"""File names and atomic writes shared by the data-pipeline commands."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np


def view_name(index: int) -> str:
    """``view_00``, ``view_01``, ..."""
    return f"view_{index:02d}"


def frame_filename(frame: int) -> str:
    """PNG name of a scene frame: ``frame_0001.png``."""
    return f"frame_{frame:04d}.png"


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON to a temporary file, then rename it into place."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(payload, indent=1))
    os.replace(temporary, path)


def write_text_atomic(path: Path, text: str) -> None:
    """Write text to a temporary file, then rename it into place."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def write_arrays_atomic(path: Path, arrays: dict[str, np.ndarray] | np.ndarray) -> None:
    """Save an ``.npz`` (dict) or ``.npy`` (array) to a temporary file, then rename it into place."""
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as handle:
        if isinstance(arrays, dict):
            np.savez_compressed(handle, **arrays)
        else:
            np.save(handle, arrays)
    os.replace(temporary, path)
