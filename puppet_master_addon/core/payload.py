"""The ``POST /v1/jobs`` body the add-on sends (bpy-free), with the field names of the backend's ``JobCreate``."""

from __future__ import annotations

import base64
import random
from collections.abc import Sequence
from typing import Any

from .part_pass import PartPass

MAX_DRAGS = 5
# Seeds are stored in an IntProperty (signed 32-bit), so random ones stay below 2**31.
MAX_RANDOM_SEED = 2**31 - 1


def random_seed(rng: random.Random | None = None) -> int:
    """A fresh seed for "Random Seed"."""
    return (rng or random).randint(0, MAX_RANDOM_SEED)


def build_payload(
    png: bytes,
    drags: Sequence[Sequence[Sequence[float]]],
    *,
    steps: int,
    guidance: float,
    seed: int | None,
    num_videos: int,
    crop_scale: float | None,
    frames: int,
    ease: str,
    parts: PartPass | None = None,
) -> dict[str, Any]:
    """The JSON body for one job.

    Parameters:
        png: the captured camera view, PNG bytes (RGBA: the alpha is the object mask).
        drags: 1-5 drags, each 2+ ``(x, y)`` points in normalised camera-frame coordinates (x right, y down).
        seed: None lets the backend pick one.
        parts: the capture's part pass (part map and depth PNGs), or None to send the image alone.
    """
    if not png:
        raise ValueError("the captured image is empty")
    if not 1 <= len(drags) <= MAX_DRAGS:
        raise ValueError(f"{len(drags)} drags: the model takes 1 to {MAX_DRAGS}")
    body = {
        "image": base64.b64encode(png).decode("ascii"),
        # the backend is strict about types: plain floats, clamped into the frame
        "drags": [[[min(max(float(x), 0.0), 1.0), min(max(float(y), 0.0), 1.0)] for x, y in drag] for drag in drags],
        "frames": int(frames),
        "steps": int(steps),
        "guidance": float(guidance),
        "seed": None if seed is None else int(seed),
        "num_videos": int(num_videos),
        "crop_scale": None if crop_scale is None else float(crop_scale),
        "ease": str(ease),
    }
    if parts is not None:
        body["part_map"] = base64.b64encode(parts.part_map).decode("ascii")
        body["depth"] = base64.b64encode(parts.depth).decode("ascii")
        body["depth_range"] = [float(parts.depth_range[0]), float(parts.depth_range[1])]
    return body
