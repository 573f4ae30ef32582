"""Shared by the Bake Motion tests and benchmark (no bpy): a rendering with ground truth as a finished job.

The backend tracks the frames it keeps for a job. A rendering becomes one by submitting a preview job
with its first frame (so the job has that frame size and count) and, once the job has succeeded,
replacing the job's frames in the service's results folder with the rendering's; the service serves
and tracks what is in that folder.
"""

from __future__ import annotations

import base64
import shutil
import time
from pathlib import Path

import requests


def seed_job(url: str, results: Path, frames_dir: str | Path, timeout: float = 60.0) -> str:
    """A succeeded job on the backend at ``url`` (results folder ``results``) whose frames are ``frames_dir``'s."""
    frames = sorted(Path(frames_dir).glob("frame_*.png"))
    if not frames:
        raise FileNotFoundError(f"no frame_*.png in {frames_dir}")
    body = {
        "image": base64.b64encode(frames[0].read_bytes()).decode("ascii"),
        "drags": [[[0.5, 0.5], [0.52, 0.5]]],
        "frames": len(frames),
        "steps": 1,
    }
    answer = requests.post(f"{url}/v1/jobs", json=body, timeout=30)
    if answer.status_code != 202:
        raise RuntimeError(f"the backend refused the job: {answer.status_code} {answer.text}")
    job_id = answer.json()["id"]
    deadline = time.monotonic() + timeout
    while (status := requests.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()["status"]) != "succeeded":
        if status not in ("queued", "running") or time.monotonic() > deadline:
            raise RuntimeError(f"the seeding job {job_id} ended {status}")
        time.sleep(0.1)
    for frame in frames:
        shutil.copyfile(frame, results / job_id / "video_0" / frame.name)
    return job_id
