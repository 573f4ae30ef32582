"""The weight-free preview engine: dragged parts move rigidly, the rest stays still, the engine keeps the contract."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from PIL import Image

from backend.engines import Cancelled, GenerationRequest
from backend.engines.preview import PreviewEngine, iter_preview_frames, warp_preview
from backend.engines.preview.regions import build_merge_tree, grow_part, refine_border
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
    assert 0.95 < red_pixels(frames[-1]).sum() / red_pixels(image).sum() < 1.05
    # where the lid's left end was, beyond the base's outline, the background shows
    assert (frames[-1][LID[1] + 2 : LID[1] + 8, LID[0] : LID[0] + 10] > 240).all()


def test_far_end_of_the_other_part_stays(lid_drag: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    image, _, frames = lid_drag
    x0, _, x1, y1 = BASE
    bottom = (slice(y1 - 10, y1 + 5), slice(x0 - 5, x1 + 5))  # the last 10 rows of the base and around
    for frame in frames:
        np.testing.assert_array_equal(frame[bottom], image[bottom])


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
    # one green bar, no edge inside it: it is one part, and both drags lift it
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
    print(f"preview: {NUM_FRAMES} frames at {SIZE}x{SIZE} in {elapsed:.3f} s")
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
        "model": "preview (rigid part motion, no weights)",
        "reason": "requested",
    }
    assert PreviewEngine(reason="no CUDA device").describe()["reason"] == "no CUDA device"


def test_engine_result_lines_up_with_the_input() -> None:
    request = rgba_request(num_videos=2, seed=None)
    calls: list[tuple] = []
    result = PreviewEngine().generate(request, progress=lambda *call: calls.append(call))

    assert calls == [(n, NUM_FRAMES) for n in range(1, NUM_FRAMES + 1)] + [(NUM_FRAMES, NUM_FRAMES, "decoding")]
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

    def progress(step: int, total: int, phase: str = "sampling") -> None:
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


# ----------------------------------------------------------------------------------------------
# parts: part maps, region growing, uncovered surface, depth order, transparency
# ----------------------------------------------------------------------------------------------


def cabinet_with_drawer() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A grey cabinet front with a red drawer set in its middle (image, mask, part map: 1 body, 2 drawer)."""
    image = np.full((SIZE, SIZE, 3), 255, dtype=np.uint8)
    parts = np.zeros((SIZE, SIZE), dtype=np.int32)
    image[60:200, 60:200] = GREY
    parts[60:200, 60:200] = 1
    image[110:150, 100:160] = RED
    parts[110:150, 100:160] = 2
    return image, parts > 0, parts


def moved_footprint(part: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Pixels a part may touch after a shift ``(dx, dy)``: each whole-pixel neighbour of it, grown by one."""
    moved = np.zeros_like(part)
    for dx in {int(np.floor(shift[0])), int(np.ceil(shift[0]))}:
        for dy in {int(np.floor(shift[1])), int(np.ceil(shift[1]))}:
            moved |= np.roll(np.roll(part, dy, axis=0), dx, axis=1)
    grown = moved.copy()
    for axis in (0, 1):
        for step in (-1, 1):
            grown |= np.roll(moved, step, axis=axis)
    return grown


def test_a_part_map_moves_only_that_part() -> None:
    image, mask, parts = cabinet_with_drawer()
    pull = np.array([0.0, 80.0])  # the drawer slides down, out over the cabinet's lower edge
    start = np.array([130.0, 130.0])
    frames = warp_preview(image, mask, [straight(start, start + pull)], part_map=parts)
    drawer = parts == 2
    for index, frame in enumerate(frames):  # outside the drawer and where it goes: the input, bit for bit
        touched = drawer | moved_footprint(drawer, pull * index / (NUM_FRAMES - 1))
        np.testing.assert_array_equal(frame[~touched], image[~touched])
    shift = centroid(red_pixels(frames[-1])) - centroid(red_pixels(image))
    np.testing.assert_allclose(shift, pull, atol=0.5)
    assert red_pixels(frames[-1]).sum() == red_pixels(image).sum()  # a rigid slide keeps the drawer whole


def test_uncovered_surface_is_inpainted_not_white() -> None:
    image, mask, parts = cabinet_with_drawer()
    start = np.array([130.0, 130.0])
    last = warp_preview(image, mask, [straight(start, start + np.array([0.0, 80.0]))], part_map=parts)[-1]
    uncovered = last[110:150, 100:160]  # where the drawer was; it has moved wholly below
    assert not red_pixels(last)[110:150, 100:160].any()
    # filled from the grey front around it: grey, not the white background
    assert np.abs(uncovered.astype(int) - GREY).max() <= 8, f"uncovered colours {np.unique(uncovered)}"


def test_parts_composite_in_depth_order() -> None:
    # a red part (id 2) and a blue part (id 3) side by side on a grey body; the blue one slides over the red
    image = np.full((SIZE, SIZE, 3), 255, dtype=np.uint8)
    parts = np.zeros((SIZE, SIZE), dtype=np.int32)
    image[50:210, 40:220], parts[50:210, 40:220] = GREY, 1
    image[100:160, 60:120], parts[100:160, 60:120] = RED, 2
    image[100:160, 150:210], parts[100:160, 150:210] = (30, 30, 220), 3
    mask = parts > 0
    start = np.array([180.0, 130.0])
    track = straight(start, start + np.array([-75.0, 0.0]))
    overlap = (slice(105, 155), slice(80, 115))  # where the blue part lands on the red one

    def last_frame(red_depth: float, blue_depth: float) -> np.ndarray:
        depth = np.where(mask, 5.0, np.inf).astype(np.float32)
        depth[parts == 2], depth[parts == 3] = red_depth, blue_depth
        return warp_preview(image, mask, [track], part_map=parts, depth=depth)[-1]

    assert red_pixels(last_frame(red_depth=2.0, blue_depth=1.0))[overlap].sum() == 0  # blue nearer: covers red
    assert red_pixels(last_frame(red_depth=1.0, blue_depth=2.0))[overlap].all()  # blue farther: passes behind
    # without depth a moving part goes in front of the still ones
    assert red_pixels(warp_preview(image, mask, [track], part_map=parts)[-1])[overlap].sum() == 0


def test_the_preview_is_deterministic() -> None:
    image, mask = two_part_object()
    tracks = [straight(LID_CENTRE, LID_CENTRE + DRAG), straight(np.array([100.0, 190.0]), np.array([80.0, 215.0]))]
    np.testing.assert_array_equal(warp_preview(image, mask, tracks), warp_preview(image, mask, tracks))
    first, second = PreviewEngine().generate(rgba_request()), PreviewEngine().generate(rgba_request())
    np.testing.assert_array_equal(first.videos[0], second.videos[0])


def test_transparency_is_kept() -> None:
    result = PreviewEngine().generate(rgba_request())
    video = result.videos[0]
    alpha = np.asarray(rgba_request().image)[..., 3]
    # frame 0: the input's alpha (after the crop and un-crop, which resample the silhouette's edge)
    assert np.abs(video[0, ..., 3].astype(int) - alpha).mean() < 1.0
    last = video[-1, ..., 3]
    assert (last[:, :100] == 0).all() and (last[200:] == 0).all()  # the background stays transparent
    assert (last[145:185, 145:195] == 255).all()  # the base stays opaque
    assert (last[113:127, 195:240] == 255).all()  # the lid is opaque where it has moved to
    assert (last[113:127, 142:180] == 0).all()  # and where it left, above the base, transparent


def test_a_grown_region_stays_inside_a_clearly_bounded_part() -> None:
    # a noisy wood-brown body with a door panel of another colour, outlined by a dark seam
    rng = np.random.default_rng(0)
    image = np.full((SIZE, SIZE, 3), 255, dtype=np.uint8)
    body = np.array([120, 75, 40]) + rng.normal(0, 6, (160, 180, 3))
    image[50:210, 40:220] = np.clip(body, 0, 255).astype(np.uint8)
    image[78:182, 118:192] = 40  # the seam
    door = np.zeros((SIZE, SIZE), dtype=bool)
    door[80:180, 120:190] = True
    image[door] = np.clip(np.array([200, 160, 110]) + rng.normal(0, 6, (int(door.sum()), 3)), 0, 255)
    mask = (image < 250).any(axis=-1)
    tree = build_merge_tree(image, mask)
    for start in ([155.0, 130.0], [125.0, 85.0], [185.0, 175.0]):  # the middle and two corners
        region = refine_border(image, mask, grow_part(tree, np.array(start)))
        inside = np.count_nonzero(region & door)
        assert np.count_nonzero(region & ~door) <= 0.02 * door.sum(), f"from {start} the region leaks out of the door"
        assert inside >= 0.95 * door.sum(), f"from {start} the region covers {inside} of {door.sum()} door pixels"


def test_without_a_clear_border_the_region_stays_small() -> None:
    # a flat grey block with a faint shading step and a red badge in a corner: the only clear seam is
    # the badge's, far from the drag, and the grey around it is too large a part; so the part stays small
    image = np.full((SIZE, SIZE, 3), 255, dtype=np.uint8)
    image[40:220, 40:220] = 150
    image[40:220, 130:220] = 153
    image[190:215, 190:215] = RED
    mask = (image < 250).any(axis=-1)
    region = grow_part(build_merge_tree(image, mask), np.array([100.0, 100.0]))
    assert 0 < region.sum() <= 0.1 * mask.sum()


def test_an_arc_turns_the_part_about_its_hinge() -> None:
    # a lid hinged at its left end on a base; its right end is dragged up along a 40 degree arc
    image = np.full((SIZE, SIZE, 3), 255, dtype=np.uint8)
    parts = np.zeros((SIZE, SIZE), dtype=np.int32)
    image[140:200, 60:200], parts[140:200, 60:200] = GREY, 1
    image[128:140, 60:200], parts[128:140, 60:200] = RED, 2
    hinge, radius = np.array([60.0, 134.0]), 130.0
    turn = np.radians(np.linspace(0.0, 40.0, NUM_FRAMES))
    track = np.stack([hinge[0] + radius * np.cos(turn), hinge[1] - radius * np.sin(turn)], axis=-1) / SIZE
    last = warp_preview(image, parts > 0, [track], part_map=parts)[-1]
    lid = red_pixels(last)
    assert abs(-principal_angle(lid) - 40.0) < 3.0, f"the lid turned {-principal_angle(lid)} degrees, the arc 40"
    rows, cols = np.nonzero(lid)
    assert np.hypot(cols.min() - hinge[0], rows.max() - hinge[1]) < 12  # its hinged end stays at the hinge


def test_engine_uses_the_part_map_through_the_crop() -> None:
    # the body and lid have one colour, so only the part map tells them apart
    width, height = 320, 240
    pixels = np.zeros((height, width, 4), dtype=np.uint8)
    pixels[110:190, 140:200] = (*RED, 255)
    parts = np.zeros((height, width), dtype=np.int32)
    parts[130:190, 140:200], parts[110:130, 140:200] = 1, 2
    drag = np.array([[170 / width, 120 / height], [215 / width, 120 / height]])
    request = GenerationRequest(image=Image.fromarray(pixels, "RGBA"), drags=[drag], part_map=parts)
    result = PreviewEngine().generate(request)
    last = result.videos[0][-1]
    assert red_pixels(last)[112:128, 190:240].all()  # the lid moved 45 px right
    np.testing.assert_array_equal(last[135:185, 140:200], result.videos[0][0][135:185, 140:200])  # the body did not
    assert result.settings["parts"] == "from the part map"


def test_request_checks_part_map_and_depth() -> None:
    image = Image.new("RGBA", (32, 24))
    drag = [np.array([[0.5, 0.5], [0.6, 0.5]])]
    with pytest.raises(ValueError, match=r"part_map has shape \(24, 31\) but the image is 32x24"):
        GenerationRequest(image=image, drags=drag, part_map=np.zeros((24, 31), dtype=np.int32))
    with pytest.raises(ValueError, match=r"depth has shape \(32, 24\) but the image is 32x24; send a \(24, 32\)"):
        GenerationRequest(image=image, drags=drag, depth=np.zeros((32, 24), dtype=np.float32))
    with pytest.raises(ValueError, match="integer part ids"):
        GenerationRequest(image=image, drags=drag, part_map=np.zeros((24, 32), dtype=np.float32))
    with pytest.raises(ValueError, match=r"ids must be 0 \(background\) to 65535, got -1..-1"):
        GenerationRequest(image=image, drags=drag, part_map=np.full((24, 32), -1))
    with pytest.raises(ValueError, match="NaN"):
        GenerationRequest(image=image, drags=drag, depth=np.full((24, 32), np.nan))
    request = GenerationRequest(  # inf marks pixels off the object
        image=image, drags=drag, part_map=np.ones((24, 32), np.uint16), depth=np.full((24, 32), np.inf)
    )
    assert request.part_map is not None and request.depth is not None


def test_frames_carry_alpha() -> None:
    image, mask = two_part_object()
    frames = list(iter_preview_frames(image, mask, [straight(LID_CENTRE, LID_CENTRE + DRAG)]))
    assert frames[0].shape == (SIZE, SIZE, 4)
    np.testing.assert_array_equal(frames[0][..., 3], np.where(mask, 255, 0))


def test_a_drag_starting_on_the_seam_moves_the_part_the_others_move() -> None:
    # three drags pull the drawer down; one of them starts a pixel onto the cabinet, beside the drawer
    image, mask, parts = cabinet_with_drawer()
    pull = np.array([0.0, 60.0])
    starts = [np.array([120.0, 130.0]), np.array([140.0, 125.0]), np.array([130.0, 150.5])]  # last: on the cabinet
    assert parts[150, 130] == 1
    last = warp_preview(image, mask, [straight(start, start + pull) for start in starts], part_map=parts)[-1]
    cabinet = (parts == 1) & ~moved_footprint(parts == 2, pull)
    np.testing.assert_array_equal(last[cabinet], image[cabinet])  # the cabinet stays where it is
    np.testing.assert_allclose(centroid(red_pixels(last)) - centroid(red_pixels(image)), pull, atol=0.5)
    # a drag well inside the cabinet moves the cabinet, even when it moves like the drawer's drags
    far = np.array([80.0, 80.0])
    last = warp_preview(
        image, mask, [straight(starts[0], starts[0] + pull), straight(far, far + pull)], part_map=parts
    )[-1]
    assert not np.array_equal(last[70:100, 65:95], image[70:100, 65:95])
