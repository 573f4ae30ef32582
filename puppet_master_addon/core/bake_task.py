"""Bake Motion's work off the main thread (bpy-free): ask the backend for tracks, fit every part.

The operator measures the parts on the main thread (ray casts need bpy) and hands a
:class:`BakeTask` everything else: the HTTP request and the fits run in a worker thread, so Blender's
UI never waits on the network or on numpy. The main thread polls :meth:`BakeTask.outcome` and, once
it is there, writes the keyframes.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .client import BackendClient, BackendError
from .motion_fit import FitError, PartMotion, PinholeView, fit_part_motion


@dataclass(frozen=True)
class PartSamples:
    """One part as measured on the video's first frame.

    Parameters:
        name: for messages (``Lid``, ``Armature: forearm``).
        frame_points: ``(x, y)`` frame coordinates (x right, y down, 0..1) of the sampled surface points.
        world_points: their world positions.
        pivot: world point the part turns about.
        axis: world direction of its hinge or slide (None for ROTATE and FREE).
        constraint: one of ``motion_fit.CONSTRAINTS``.
    """

    name: str
    frame_points: list[tuple[float, float]]
    world_points: list[tuple[float, float, float]]
    pivot: tuple[float, float, float]
    axis: tuple[float, float, float] | None
    constraint: str


@dataclass
class BakeOutcome:
    """What the task found: a motion per part that could be fitted, a reason per part that could not,
    or ``error`` when nothing could be done (backend unreachable, job gone)."""

    motions: dict[str, PartMotion] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    error: str = ""
    num_frames: int = 0
    track_s: float = 0.0  # the tracks request, end to end
    server_track_s: float = 0.0  # of which the backend's tracking itself
    fit_s: float = 0.0


class BakeTask:
    """Track the parts' points through a result and fit each part's motion.

    Parameters:
        client: the backend client (used only by the thread that runs the task).
        job_id, video: the result on the backend.
        parts: the measured parts.
        camera_matrix, camera_params: the scene camera (4x4 world matrix, ``CameraParams``).
        expected_frames: frames the result has (0: do not check).
        smoothing: temporal smoothing, Gaussian sigma in frames.
    """

    def __init__(
        self,
        client: BackendClient,
        job_id: str,
        video: int,
        parts: list[PartSamples],
        camera_matrix: Any,
        camera_params: Any,
        expected_frames: int = 0,
        smoothing: float = 0.5,
    ) -> None:
        self.client = client
        self.job_id, self.video = job_id, video
        self.parts = parts
        self.camera_matrix, self.camera_params = camera_matrix, camera_params
        self.expected_frames = expected_frames
        self.smoothing = smoothing
        self._outcome: BakeOutcome | None = None
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="puppet-master-bake", daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        """Ask the task to stop; whatever it finds after this is not used."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def outcome(self) -> BakeOutcome | None:
        """The result once the task has ended, else None (never blocks)."""
        return self._outcome

    def wait(self, timeout: float | None = None) -> BakeOutcome | None:
        if self._thread is not None:
            self._thread.join(timeout)
        return self._outcome

    def run(self) -> BakeOutcome:
        """The whole task in this thread; never raises for backend or fitting trouble."""
        outcome = BakeOutcome()
        try:
            self._run(outcome)
        except BackendError as error:
            outcome.error = error.message
        except Exception as error:  # a worker thread must always leave an outcome
            outcome.error = f"Unexpected error while baking: {type(error).__name__}: {error}"
        finally:
            self.client.close()
        self._outcome = outcome
        return outcome

    def _run(self, outcome: BakeOutcome) -> None:
        import numpy as np

        points = [point for part in self.parts for point in part.frame_points]
        started = time.perf_counter()
        answer = self.client.tracks(self.job_id, points, self.video)
        outcome.track_s = time.perf_counter() - started
        outcome.server_track_s = float(answer.get("seconds") or 0.0)
        if self._cancel.is_set():
            outcome.error = "Cancelled"
            return
        width, height = int(answer["width"]), int(answer["height"])
        tracks = np.asarray(answer["tracks"], dtype=np.float64) * [width, height]  # [N, F, 2] -> pixels
        confidence = np.asarray(answer["confidence"], dtype=np.float64)
        outcome.num_frames = tracks.shape[1]
        if tracks.shape[0] != len(points) or (self.expected_frames and outcome.num_frames != self.expected_frames):
            outcome.error = (
                f"The backend tracked {tracks.shape[0]} points over {outcome.num_frames} frames, but "
                f"{len(points)} points over {self.expected_frames} frames were expected; is the result "
                "the same video on the backend?"
            )
            return
        view = PinholeView.from_camera(self.camera_matrix, self.camera_params, width, height)
        started = time.perf_counter()
        first = 0
        for part in self.parts:
            rows = slice(first, first + len(part.frame_points))
            first = rows.stop
            try:
                outcome.motions[part.name] = fit_part_motion(
                    part.name, part.world_points, tracks[rows], confidence[rows], view, part.pivot,
                    part.constraint, part.axis, smoothing=self.smoothing,
                )  # fmt: skip
            except FitError as error:
                outcome.refused[part.name] = str(error)
        outcome.fit_s = time.perf_counter() - started
