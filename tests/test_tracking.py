"""Point tracking for Bake Motion: the tracker on textures moved by known flows, ``puppet-master track``,
and ``POST /v1/jobs/{id}/tracks`` on a real server (a real preview job whose frames are replaced by
frames with a known motion, so the answer can be checked to the pixel)."""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests
from PIL import Image

from backend.cli import main as cli_main
from backend.engines.preview import PreviewEngine
from backend.motion import load_frames, track_points
from backend.service import ServiceSettings, create_app
from backend.service.schemas.tracks import MAX_TRACK_POINTS
from backend.service.server import BackgroundServer
from tests.slow_backend import HeldFactory

FRAMES = 14
WIDTH, HEIGHT = 160, 120


def texture(size: tuple[int, int], seed: int = 0, blur: float = 1.5) -> np.ndarray:
    """Smooth random grey texture ``(H, W)`` float, 0..255."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.random(size).astype(np.float32), (0, 0), blur)
    return (noise - noise.min()) / (noise.max() - noise.min()) * 255.0


def moved_frames(flow: Callable[[int], np.ndarray], seed: int = 0, alpha: bool = False) -> list[np.ndarray]:
    """``FRAMES`` frames of a texture warped by the 2x3 affine ``flow(t)`` (source -> frame pixels, OpenCV
    convention: pixel centres at integers). With ``alpha``, the texture is a square "object" on a
    transparent background that moves with it."""
    big = texture((HEIGHT * 2, WIDTH * 2), seed)
    offset = np.array([WIDTH // 2, HEIGHT // 2], dtype=np.float64)
    frames = []
    for t in range(FRAMES):
        matrix = flow(t).copy()
        matrix[:, 2] -= matrix[:, :2] @ offset  # source = big-image pixel - offset: big-image pixel -> frame pixel
        grey = cv2.warpAffine(big, matrix, (WIDTH, HEIGHT), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        frame = np.clip(grey + 0.5, 0, 255).astype(np.uint8)
        if alpha:
            mask = np.zeros((HEIGHT * 2, WIDTH * 2), np.float32)
            mask[HEIGHT // 2 + 20 : HEIGHT // 2 + 100, WIDTH // 2 + 30 : WIDTH // 2 + 130] = 255.0
            opacity = cv2.warpAffine(mask, matrix, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR)
            frame = np.dstack([frame, frame, frame, np.clip(opacity + 0.5, 0, 255).astype(np.uint8)])
        frames.append(frame)
    return frames


def truth(flow: Callable[[int], np.ndarray], points: np.ndarray) -> np.ndarray:
    """``(N, F, 2)`` normalised positions of ``points`` (normalised, frame 0) under ``flow``."""
    pixels = points * [WIDTH, HEIGHT] - 0.5
    start = np.linalg.solve(flow(0)[:, :2], (pixels - flow(0)[:, 2]).T).T  # frame 0 -> source
    moved = np.stack([start @ flow(t)[:, :2].T + flow(t)[:, 2] for t in range(FRAMES)], axis=1)
    return (moved + 0.5) / [WIDTH, HEIGHT]


def translation(t: int) -> np.ndarray:
    return np.array([[1.0, 0.0, 1.37 * t], [0.0, 1.0, -0.61 * t]])


def turn_and_zoom(t: int) -> np.ndarray:
    matrix = cv2.getRotationMatrix2D((WIDTH / 2, HEIGHT / 2), 1.2 * t, 1.0 + 0.008 * t)
    matrix[:, 2] += [0.9 * t, 0.4 * t]
    return matrix


def pixel_errors(found: np.ndarray, expected: np.ndarray) -> np.ndarray:
    return np.linalg.norm((found - expected) * [WIDTH, HEIGHT], axis=-1)


# ------------------------------------------------------------------------------------------------
# the tracker
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flow", [translation, turn_and_zoom], ids=["translation", "rotation-zoom"])
def test_tracks_follow_a_known_flow_within_half_a_pixel(flow: Callable[[int], np.ndarray]) -> None:
    rng = np.random.default_rng(3)
    points = rng.uniform([0.25, 0.25], [0.75, 0.75], (40, 2))
    tracks = track_points(moved_frames(flow), points)
    assert tracks.positions.shape == (40, FRAMES, 2) and tracks.confidence.shape == (40, FRAMES)
    errors = pixel_errors(tracks.positions, truth(flow, points))
    assert errors.max() < 0.5, errors.max()
    assert (tracks.confidence > 0.5).all(), tracks.confidence.min()
    assert (tracks.width, tracks.height) == (WIDTH, HEIGHT)


def test_query_frame_in_the_middle_tracks_both_ways() -> None:
    frames = moved_frames(turn_and_zoom)
    middle = FRAMES // 2
    points_at_0 = np.random.default_rng(4).uniform(0.3, 0.7, (20, 2))
    expected = truth(turn_and_zoom, points_at_0)
    tracks = track_points(frames, expected[:, middle], query_frame=middle)
    assert pixel_errors(tracks.positions, expected).max() < 0.5
    assert tracks.query_frame == middle and (tracks.confidence[:, middle] == 1).all()


def test_transparent_background_does_not_hold_points_back() -> None:
    """An RGBA object moving over a transparent background: points inside it follow it."""
    frames = moved_frames(translation, alpha=True)
    points = np.random.default_rng(5).uniform([0.45, 0.4], [0.8, 0.75], (20, 2))
    tracks = track_points(frames, points)
    assert pixel_errors(tracks.positions, truth(translation, points)).max() < 0.5


def test_points_that_lose_their_texture_are_flagged_and_stay_lost() -> None:
    """Half the frame turns flat grey from frame 6 on (an occluder): points there lose all confidence."""
    frames = moved_frames(translation)
    for frame in frames[6:]:
        frame[:, : WIDTH // 2] = 128
    left = np.array([[0.2, 0.5], [0.25, 0.3], [0.3, 0.7]])
    right = np.array([[0.6, 0.5], [0.7, 0.3], [0.65, 0.7]])
    tracks = track_points(frames, np.concatenate([left, right]))
    assert (tracks.confidence[:3, 6:] == 0).all(), tracks.confidence[:3]
    assert (tracks.confidence[:3, :6] > 0.5).all()
    assert (tracks.confidence[3:] > 0.5).all()


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ([[0.5, 1.2]], "point 0 [0.5, 1.2] is outside the frame"),
        ([[0.5, float("nan")]], "is outside the frame"),
        ([[0.5, 0.5, 0.5]], "list of [x, y] pairs"),
        ([], "list of [x, y] pairs"),
    ],
)
def test_bad_query_points_are_named(points: list, message: str) -> None:
    with pytest.raises(ValueError, match=re_escape(message)):
        track_points(moved_frames(translation)[:2], points)


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


def test_tracking_needs_frames_of_one_size() -> None:
    frames = moved_frames(translation)[:2]
    with pytest.raises(ValueError, match="differ in size"):
        track_points([frames[0], frames[1][:50]], [[0.5, 0.5]])
    with pytest.raises(ValueError, match="query_frame 5"):
        track_points(frames, [[0.5, 0.5]], query_frame=5)


# ------------------------------------------------------------------------------------------------
# puppet-master track
# ------------------------------------------------------------------------------------------------


def write_frames(folder: Path, frames: list[np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"frame_{index:04d}.png")
    return folder


def test_track_command_writes_tracks_json(tmp_path: Path) -> None:
    folder = write_frames(tmp_path / "video_0", moved_frames(turn_and_zoom))
    points = np.random.default_rng(6).uniform(0.3, 0.7, (10, 2))
    (tmp_path / "points.json").write_text(json.dumps({"points": points.tolist(), "query_frame": 0}))
    out = tmp_path / "out" / "tracks.json"
    assert cli_main(["track", str(folder), "--points", str(tmp_path / "points.json"), "--out", str(out)]) == 0
    answer = json.loads(out.read_text())
    assert (answer["width"], answer["height"], answer["num_frames"]) == (WIDTH, HEIGHT, FRAMES)
    found = np.asarray(answer["tracks"])
    assert found.shape == (10, FRAMES, 2) and np.asarray(answer["confidence"]).shape == (10, FRAMES)
    assert pixel_errors(found, truth(turn_and_zoom, points)).max() < 0.5
    assert len(load_frames(folder)) == FRAMES


def test_track_command_refuses_bad_input_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = write_frames(tmp_path / "frames", moved_frames(translation)[:3])
    (tmp_path / "bad.json").write_text('{"points": "nope"}')
    (tmp_path / "outside.json").write_text("[[0.5, 0.5], [1.5, 0.2]]")
    out = str(tmp_path / "t.json")
    assert cli_main(["track", str(folder), "--points", str(tmp_path / "bad.json"), "--out", out]) == 2
    assert "expected a list of [x, y] points" in capsys.readouterr().err
    assert cli_main(["track", str(folder), "--points", str(tmp_path / "outside.json"), "--out", out]) == 2
    assert "point 1 [1.5, 0.2] is outside the frame" in capsys.readouterr().err
    assert cli_main(["track", str(tmp_path / "none"), "--points", str(tmp_path / "outside.json"), "--out", out]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not Path(out).exists()


# ------------------------------------------------------------------------------------------------
# POST /v1/jobs/{id}/tracks
# ------------------------------------------------------------------------------------------------


def png_base64(frame: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def wait_until(url: str, done: Callable[[dict], bool], timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = requests.get(url, timeout=10).json()
        if done(job):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


@pytest.fixture(scope="module")
def held_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, HeldFactory]]:
    """A server whose preview engine loads only when the test releases it (so a job can be seen queued)."""
    results = tmp_path_factory.mktemp("tracks") / "results"
    factory = HeldFactory(engine=PreviewEngine())
    app = create_app(ServiceSettings(results_dir=results, max_queue=4), engine_factory=factory)
    with BackgroundServer(app) as server:
        yield server.url, results, factory
    factory.release.set()


def test_tracks_endpoint_follows_the_jobs_frames_and_refuses_bad_requests(
    held_server: tuple[str, Path, HeldFactory],
) -> None:
    url, results, factory = held_server
    frames = moved_frames(turn_and_zoom, alpha=True)
    body = {"image": png_base64(frames[0]), "drags": [[[0.5, 0.5], [0.6, 0.45]]], "frames": FRAMES, "steps": 2}
    job = requests.post(f"{url}/v1/jobs", json=body, timeout=30).json()
    tracks_url = f"{url}/v1/jobs/{job['id']}/tracks"
    points = np.random.default_rng(7).uniform([0.45, 0.4], [0.75, 0.7], (12, 2))

    # still queued (the engine is loading): 409, it has no frames yet
    answer = requests.post(tracks_url, json={"points": points.tolist()}, timeout=30)
    assert answer.status_code == 409, answer.text
    assert answer.json()["detail"][0]["field"] == "job_id" and "queued" in answer.json()["detail"][0]["message"]

    factory.release.set()
    wait_until(f"{url}/v1/jobs/{job['id']}", lambda state: state["status"] == "succeeded")
    # the job's frames replaced by frames with a known motion, where the service keeps them
    write_frames(results / job["id"] / "video_0", frames)
    answer = requests.post(tracks_url, json={"points": points.tolist()}, timeout=30)
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert (found["job_id"], found["video"], found["num_frames"]) == (job["id"], 0, FRAMES)
    assert (found["width"], found["height"], found["query_frame"]) == (WIDTH, HEIGHT, 0)
    assert pixel_errors(np.asarray(found["tracks"]), truth(turn_and_zoom, points)).max() < 0.5
    assert np.asarray(found["confidence"]).shape == (12, FRAMES) and found["seconds"] >= 0

    problems = {
        "outside": ({"points": [[0.5, 0.5], [1.01, 0.2]]}, 422, "points[1][0]"),
        "too many": ({"points": [[0.5, 0.5]] * (MAX_TRACK_POINTS + 1)}, 422, "points"),
        "none": ({"points": []}, 422, "points"),
        "query frame": ({"points": [[0.5, 0.5]], "query_frame": FRAMES}, 422, "query_frame"),
        "video": ({"points": [[0.5, 0.5]], "video": 1}, 404, "video"),
        "unknown field": ({"points": [[0.5, 0.5]], "frame": 2}, 422, "frame"),
    }
    for name, (request, status, field) in problems.items():
        answer = requests.post(tracks_url, json=request, timeout=30)
        assert answer.status_code == status, (name, answer.text)
        assert answer.json()["detail"][0]["field"] == field, (name, answer.json())
    answer = requests.post(f"{url}/v1/jobs/{'A' * 22}/tracks", json={"points": [[0.5, 0.5]]}, timeout=30)
    assert answer.status_code == 404 and "no job" in answer.json()["detail"][0]["message"]

    # the frames gone from disk (deleted by hand, pruned): 404 that says so
    for frame in (results / job["id"] / "video_0").glob("*.png"):
        frame.unlink()
    answer = requests.post(tracks_url, json={"points": [[0.5, 0.5]]}, timeout=30)
    assert answer.status_code == 404 and "gone" in answer.json()["detail"][0]["message"]
