"""The weight-free preview engine: the warp follows the drags part by part, and the engine keeps the contract."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from PIL import Image

from backend.engines import Cancelled, GenerationRequest
from backend.engines.preview import PreviewEngine, warp_preview
from backend.pipeline.inputs import prepare_inputs

SIZE = 256
NUM_FRAMES = 14
RED = (220, 30, 30)
GREY = 128
# A grey "base" box with a red "lid" on top of it, in model-image pixels (x0, y0, x1, y1).
BASE = (90, 120, 170, 200)
LID = (90, 95, 170, 120)
LID_CENTRE = np.array([130.0, 107.5])
DRAG = np.array([45.0, 0.0])  # the lid is dragged 45 px to the right


def two_part_object() -> tuple[np.ndarray, np.ndarray]:
    """A model image on white with a grey base and a red lid attached on top, and its object mask."""
    image = np.full((SIZE, SIZE, 3), 255, dtype=np.uint8)
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    for (x0, y0, x1, y1), colour in ((BASE, GREY), (LID, RED)):
        image[y0:y1, x0:x1] = colour
        mask[y0:y1, x0:x1] = True
    image[BASE[1] : BASE[3] : 10, BASE[0] : BASE[2]] = 90  # stripes, so a smear would show
    return image, mask


def straight(start: np.ndarray, end: np.ndarray, num_frames: int = NUM_FRAMES) -> np.ndarray:
    """``(F, 2)`` normalised positions from ``start`` to ``end`` (pixels), evenly timed."""
    t = np.linspace(0.0, 1.0, num_frames)[:, None]
    return (start + (end - start) * t) / SIZE


def red_pixels(frame: np.ndarray) -> np.ndarray:
    return (frame[..., 0] > 180) & (frame[..., 1] < 90) & (frame[..., 2] < 90)


def centroid(selected: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(selected)
    return np.array([cols.mean(), rows.mean()])


@pytest.fixture(scope="module")
def lid_drag() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    image, mask = two_part_object()
    return image, mask, warp_preview(image, mask, [straight(LID_CENTRE, LID_CENTRE + DRAG)])


# ----------------------------------------------------------------------------------------------
# the warp
# ----------------------------------------------------------------------------------------------


def test_frame_zero_is_the_input(lid_drag: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    image, _, frames = lid_drag
    assert frames.shape == (NUM_FRAMES, SIZE, SIZE, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames[0], image)


def test_dragged_part_follows_the_drag(lid_drag: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    image, _, frames = lid_drag
    shift = centroid(red_pixels(frames[-1])) - centroid(red_pixels(image))
    assert abs(shift[0] - DRAG[0]) < 0.25 * DRAG[0], f"red centroid moved {shift}, drag {DRAG}"
    assert abs(shift[1]) < 0.2 * DRAG[0], f"red centroid moved {shift}, drag {DRAG}"
    # the motion is progressive: the lid is about half-way in the middle frame
    middle = centroid(red_pixels(frames[NUM_FRAMES // 2])) - centroid(red_pixels(image))
    assert 0.25 * DRAG[0] < middle[0] < 0.75 * DRAG[0]
    # the lid stays a lid: about as many red pixels, not smeared over the base
    assert 0.8 < red_pixels(frames[-1]).sum() / red_pixels(image).sum() < 1.25
    # where the lid's left end was, the background shows
    assert (frames[-1][LID[1] + 2 : LID[1] + 8, LID[0] : LID[0] + 10] > 240).all()


def test_far_end_of_the_other_part_stays(lid_drag: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    image, _, frames = lid_drag
    x0, _, x1, y1 = BASE
    bottom = (slice(y1 - 10, y1 + 5), slice(x0 - 5, x1 + 5))  # the last 10 rows of the base and around
    for frame in frames:
        difference = np.abs(frame[bottom].astype(int) - image[bottom])
        assert difference.max() <= 2, f"the base's far end changed by up to {difference.max()}"


def test_background_far_from_the_object_stays_white(lid_drag: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    _, _, frames = lid_drag
    assert (frames[:, :, :60] == 255).all()  # left of the object
    assert (frames[:, 220:] == 255).all()  # below it
    assert (frames[:, :40] == 255).all()  # above it


def test_no_drag_motion_keeps_every_frame() -> None:
    image, mask = two_part_object()
    frames = warp_preview(image, mask, [straight(LID_CENTRE, LID_CENTRE)])
    for frame in frames:
        np.testing.assert_array_equal(frame, image)


def test_two_drags_moving_together_move_the_object_between_them() -> None:
    image = np.full((SIZE, SIZE, 3), 255, dtype=np.uint8)
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    image[120:140, 30:226] = (0, 150, 80)
    mask[120:140, 30:226] = True
    up = np.array([0.0, -50.0])
    tracks = [straight(np.array([40.0, 130.0]), np.array([40.0, 130.0]) + up)]
    tracks.append(straight(np.array([216.0, 130.0]), np.array([216.0, 130.0]) + up))
    last = warp_preview(image, mask, tracks)[-1]
    green = (last[..., 1] > 100) & (last[..., 0] < 80)
    for column in (40, 128, 216):  # the ends and the middle all rise about 50 px
        rows = np.flatnonzero(green[:, column])
        assert abs(rows.mean() - 129.5 - up[1]) < 8, f"column {column}: green rows {rows.min()}..{rows.max()}"


def test_bad_warp_inputs_are_rejected() -> None:
    image, mask = two_part_object()
    track = straight(LID_CENTRE, LID_CENTRE + DRAG)
    with pytest.raises(ValueError, match="mask must have shape"):
        warp_preview(image, mask[:-1], [track])
    with pytest.raises(ValueError, match="same shape"):
        warp_preview(image, mask, [track, track[:-1]])


def test_fourteen_frames_at_256_are_fast() -> None:
    image, mask = two_part_object()
    tracks = [straight(LID_CENTRE, LID_CENTRE + DRAG), straight(np.array([100.0, 190.0]), np.array([80.0, 215.0]))]
    started = time.perf_counter()
    frames = warp_preview(image, mask, tracks)
    elapsed = time.perf_counter() - started
    print(f"preview warp: {NUM_FRAMES} frames at {SIZE}x{SIZE} in {elapsed:.3f} s")
    assert frames.shape[0] == NUM_FRAMES
    assert elapsed < 3.0  # the target is < 1 s; loose, so a busy machine does not fail it


# ----------------------------------------------------------------------------------------------
# the engine
# ----------------------------------------------------------------------------------------------


def rgba_request(**overrides: object) -> GenerationRequest:
    """A 320 x 240 render with transparent film (alpha = the object) and one drag on the lid."""
    width, height = 320, 240
    pixels = np.zeros((height, width, 4), dtype=np.uint8)
    pixels[130:190, 140:200] = (GREY, GREY, GREY, 255)
    pixels[110:130, 140:200] = (*RED, 255)
    drag = np.array([[170 / width, 120 / height], [215 / width, 120 / height]])
    settings: dict[str, object] = dict(image=Image.fromarray(pixels, "RGBA"), drags=[drag], num_frames=NUM_FRAMES)
    settings.update(overrides)
    return GenerationRequest(**settings)  # type: ignore[arg-type]


def test_engine_describes_itself() -> None:
    assert PreviewEngine().describe() == {
        "engine": "preview",
        "device": "cpu",
        "dtype": "none",
        "model": "preview (image warping, no weights)",
        "reason": "requested",
    }
    assert PreviewEngine(reason="no CUDA device").describe()["reason"] == "no CUDA device"


def test_engine_result_lines_up_with_the_input() -> None:
    request = rgba_request(num_videos=2, seed=None)
    calls: list[tuple[int, int]] = []
    result = PreviewEngine().generate(request, progress=lambda step, total: calls.append((step, total)))

    assert calls == [(n, NUM_FRAMES) for n in range(1, NUM_FRAMES + 1)]
    assert result.engine == "preview" and 0 <= result.seed < 2**32  # a null seed is picked and reported
    assert len(result.videos) == len(result.crops) == 2
    for video, crop in zip(result.videos, result.crops, strict=True):
        assert video.shape == (NUM_FRAMES, 240, 320, 4) and video.dtype == np.uint8
        assert crop.shape == (NUM_FRAMES, 256, 256, 3) and crop.dtype == np.uint8
    np.testing.assert_array_equal(result.videos[0], result.videos[1])
    assert [track.shape for track in result.image_trajectories] == [(NUM_FRAMES, 2)]
    assert set(result.timings) == {"preprocess", "warp", "postprocess"}
    assert result.settings["num_videos"] == 2 and "identical" in result.settings["variations"]
    assert "image" not in result.settings and "mask" not in result.settings

    # frame 0 of the crop is the model image; the lid moves right in the input frame
    inputs = prepare_inputs(request.image, request.drags, NUM_FRAMES)
    np.testing.assert_array_equal(result.crops[0][0], np.asarray(inputs.image))
    shift = centroid(red_pixels(result.videos[0][-1])) - centroid(red_pixels(result.videos[0][0]))
    assert 30 < shift[0] < 55, f"the lid moved {shift} px in the input frame, the drag 45 px"


def test_engine_seed_is_reported() -> None:
    assert PreviewEngine().generate(rgba_request(seed=123)).seed == 123


def test_engine_cancel_between_frames() -> None:
    cancel = threading.Event()
    calls: list[int] = []

    def progress(step: int, total: int) -> None:
        calls.append(step)
        if step == 3:
            cancel.set()

    with pytest.raises(Cancelled):
        PreviewEngine().generate(rgba_request(), progress=progress, cancel=cancel)
    assert calls == [1, 2, 3]


def test_engine_bad_input_raises_the_same_value_error() -> None:
    drag = np.array([[0.5, 0.5], [0.6, 0.5]])
    request = rgba_request(drags=[drag] * 6)
    with pytest.raises(ValueError) as expected:
        prepare_inputs(request.image, request.drags, NUM_FRAMES)
    with pytest.raises(ValueError) as raised:
        PreviewEngine().generate(request)
    assert str(raised.value) == str(expected.value)


def principal_angle(selected: np.ndarray) -> float:
    """Angle in degrees of the principal axis of the selected pixels (image moments), in (-90, 90]."""
    rows, cols = np.nonzero(selected)
    dx, dy = cols - cols.mean(), rows - rows.mean()
    return float(np.degrees(0.5 * np.arctan2(2.0 * (dx * dy).mean(), (dx * dx).mean() - (dy * dy).mean())))


def test_a_straight_drag_slides_the_part() -> None:
    # a grey cabinet with a red drawer on its right side, pulled straight out by 40 px
    image = np.full((SIZE, SIZE, 3), 255, dtype=np.uint8)
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    image[70:190, 50:150] = GREY
    image[70:190:10, 50:150] = 90
    image[105:145, 150:195] = RED
    mask[70:190, 50:195] = True
    pull = np.array([40.0, 0.0])
    frames = warp_preview(image, mask, [straight(np.array([172.0, 125.0]), np.array([172.0, 125.0]) + pull)])
    before, after = red_pixels(image), red_pixels(frames[-1])
    assert abs(principal_angle(after) - principal_angle(before)) < 5.0
    shift = centroid(after) - centroid(before)
    assert abs(shift[0] - pull[0]) < 0.25 * pull[0] and abs(shift[1]) < 0.1 * pull[0], f"drawer moved {shift}"
    left_edge = (slice(60, 200), slice(40, 70))  # the cabinet's far (left) edge and around it
    for frame in frames:
        np.testing.assert_array_equal(frame[left_edge], image[left_edge])

    # the same lid pushed sideways along a straight line slides rather than tilts
    image, mask = two_part_object()
    last = warp_preview(image, mask, [straight(LID_CENTRE, LID_CENTRE + DRAG)])[-1]
    assert abs(principal_angle(red_pixels(last))) < 5.0


def test_a_drag_along_an_arc_turns_the_part() -> None:
    # a thin red bar standing on a grey base, its top dragged along a 30 degree arc about its foot
    image = np.full((SIZE, SIZE, 3), 255, dtype=np.uint8)
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    image[190:225, 70:186] = GREY
    image[60:190, 122:134] = RED
    mask[190:225, 70:186] = mask[60:190, 122:134] = True
    foot, radius = np.array([128.0, 190.0]), 120.0
    turn = np.radians(np.linspace(0.0, 30.0, NUM_FRAMES))
    track = np.stack([foot[0] + radius * np.sin(turn), foot[1] - radius * np.cos(turn)], axis=-1) / SIZE
    last = warp_preview(image, mask, [track])[-1]
    tilt = 90.0 - abs(principal_angle(red_pixels(last)))  # the bar starts vertical (+-90 degrees)
    assert 20.0 < tilt < 45.0, f"the bar turned by {tilt} degrees along a 30 degree arc"
