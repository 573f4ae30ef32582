"""Model-image crop, drag mapping through it and un-cropping of the generated frames."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from backend.pipeline.preprocess import (
    CropBox,
    full_image_box,
    key_out_white,
    object_crop_box,
    prepare_model_image,
    uncrop_frames,
)

WHITE = np.array([255, 255, 255], dtype=np.uint8)


def object_on_transparent(
    width: int = 400, height: int = 300, box: tuple[int, int, int, int] = (100, 80, 228, 208), seed: int = 0
) -> np.ndarray:
    """RGBA (H, W, 4) uint8: random opaque colours inside ``box`` (x0, y0, x1, y1), transparent red elsewhere."""
    rng = np.random.default_rng(seed)
    pixels = np.zeros((height, width, 4), dtype=np.uint8)
    pixels[..., 0] = 255
    x0, y0, x1, y1 = box
    pixels[y0:y1, x0:x1, :3] = rng.integers(0, 256, size=(y1 - y0, x1 - x0, 3), dtype=np.uint8)
    pixels[y0:y1, x0:x1, 3] = 255
    return pixels


# --- CropBox ------------------------------------------------------------------------------------


def test_points_round_trip_through_fractional_box() -> None:
    box = CropBox(left=-13.37, top=41.25, size=511.3, image_width=1920, image_height=1080)
    points = np.random.default_rng(1).uniform(-0.2, 1.2, size=(3, 7, 2))
    np.testing.assert_allclose(box.crop_to_image(box.image_to_crop(points)), points, rtol=0, atol=1e-9)
    np.testing.assert_allclose(box.image_to_crop(box.crop_to_image(points)), points, rtol=0, atol=1e-9)


def test_box_corners_map_to_crop_corners() -> None:
    box = CropBox(left=10.5, top=-20.0, size=100.0, image_width=200, image_height=50)
    corners = np.array([[10.5 / 200, -20 / 50], [110.5 / 200, 80 / 50]])
    np.testing.assert_allclose(box.image_to_crop(corners), [[0, 0], [1, 1]], atol=1e-12)


def test_box_record_round_trip() -> None:
    box = CropBox(left=-1.5, top=2.25, size=300.0, image_width=640, image_height=480)
    record = json.loads(json.dumps(box.to_dict()))
    assert CropBox.from_dict(record) == box
    with pytest.raises(ValueError, match="missing \\['size'\\]"):
        CropBox.from_dict({"left": 0, "top": 0, "image_width": 1, "image_height": 1})


@pytest.mark.parametrize("size", [0.0, -3.0, float("nan")])
def test_box_rejects_bad_size(size: float) -> None:
    with pytest.raises(ValueError, match="size"):
        CropBox(left=0, top=0, size=size, image_width=10, image_height=10)


def test_points_need_xy_last() -> None:
    box = full_image_box(10, 10)
    with pytest.raises(ValueError, match="shape"):
        box.image_to_crop(np.zeros((4, 3)))


# --- crop boxes -----------------------------------------------------------------------------------


def test_object_crop_box_centre_and_side() -> None:
    mask = np.zeros((100, 200), dtype=bool)
    mask[20:40, 50:90] = True  # 40 wide, 20 tall, centre (70, 30)
    box = object_crop_box(mask, crop_scale=2.2)
    assert box.size == pytest.approx(88.0)
    assert box.left + box.size / 2 == pytest.approx(70.0)
    assert box.top + box.size / 2 == pytest.approx(30.0)
    assert (box.image_width, box.image_height) == (200, 100)


def test_object_crop_box_mask_types() -> None:
    float_mask = np.full((50, 60), 0.4)
    float_mask[10:20, 30:34] = 0.9
    box = object_crop_box(float_mask, crop_scale=1.0)
    assert (box.left, box.top, box.size) == (27.0, 10.0, 10.0)
    uint8_mask = (float_mask > 0.5).astype(np.uint8) * 255
    assert object_crop_box(uint8_mask, crop_scale=1.0) == box


def test_object_crop_box_errors() -> None:
    with pytest.raises(ValueError, match="selects no pixel"):
        object_crop_box(np.zeros((8, 8), dtype=bool))
    mask = np.ones((8, 8), dtype=bool)
    for bad_scale in (0.0, -1.0):
        with pytest.raises(ValueError, match="crop_scale must be positive"):
            object_crop_box(mask, crop_scale=bad_scale)
    with pytest.raises(ValueError, match="2-D"):
        object_crop_box(np.ones((8, 8, 1)))


def test_full_image_box_pads_to_centred_square() -> None:
    assert full_image_box(300, 200) == CropBox(left=0.0, top=-50.0, size=300.0, image_width=300, image_height=200)
    assert full_image_box(120, 160) == CropBox(left=-20.0, top=0.0, size=160.0, image_width=120, image_height=160)


# --- model image ----------------------------------------------------------------------------------


def test_rgb_without_mask_is_padded_with_white() -> None:
    pixels = np.random.default_rng(2).integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    model_image, box = prepare_model_image(Image.fromarray(pixels), size=64)
    assert box == full_image_box(64, 48)
    assert model_image.mode == "RGB" and model_image.size == (64, 64)
    result = np.asarray(model_image)
    np.testing.assert_array_equal(result[8:56], pixels)
    assert (result[:8] == WHITE).all() and (result[56:] == WHITE).all()


def test_rgba_is_composited_over_white() -> None:
    pixels = np.zeros((32, 32, 4), dtype=np.uint8)
    pixels[..., 0] = 255  # red, fully transparent: must vanish
    pixels[8:24, 8:24] = (0, 0, 200, 255)  # opaque blue
    pixels[0, 0] = (0, 0, 0, 128)  # half-transparent black
    model_image, box = prepare_model_image(Image.fromarray(pixels, "RGBA"), crop_scale=None, size=32)
    assert box == full_image_box(32, 32)
    result = np.asarray(model_image).astype(int)
    assert model_image.mode == "RGB"
    assert (result[8:24, 8:24] == (0, 0, 200)).all()
    assert (result[16:, 28:] == 255).all()
    assert np.abs(result[0, 0] - 127).max() <= 1


def test_rgba_alpha_gives_the_object_box() -> None:
    pixels = object_on_transparent()
    pixels[0:5, 0:5, 3] = 100  # faint (alpha <= 127) pixels are not the object
    _, box = prepare_model_image(Image.fromarray(pixels, "RGBA"), crop_scale=2.0)
    assert box == CropBox(left=36.0, top=16.0, size=256.0, image_width=400, image_height=300)


def test_rgb_with_mask_whitens_the_background() -> None:
    pixels = np.zeros((40, 40, 3), dtype=np.uint8)
    mask = np.zeros((40, 40), dtype=bool)
    mask[10:30, 15:25] = True
    model_image, box = prepare_model_image(Image.fromarray(pixels), mask=mask, crop_scale=2.0, size=40)
    assert box == CropBox(left=0.0, top=0.0, size=40.0, image_width=40, image_height=40)
    result = np.asarray(model_image)
    assert (result[mask] == 0).all()
    assert (result[~mask] == 255).all()


def test_mask_must_match_the_image() -> None:
    with pytest.raises(ValueError, match="pass a \\(20, 30\\) mask"):
        prepare_model_image(Image.new("RGB", (30, 20)), mask=np.ones((30, 20), dtype=bool))


def test_box_beyond_the_image_is_padded_with_white() -> None:
    pixels = np.zeros((64, 64, 4), dtype=np.uint8)
    pixels[0:16, 0:16] = (0, 0, 0, 255)  # object in the top-left corner
    model_image, box = prepare_model_image(Image.fromarray(pixels, "RGBA"), crop_scale=4.0, size=64)
    assert (box.left, box.top, box.size) == (-24.0, -24.0, 64.0)
    result = np.asarray(model_image)
    assert (result[:24] == WHITE).all() and (result[:, :24] == WHITE).all()
    assert (result[24:40, 24:40] == 0).all()


def test_default_crop_puts_bbox_corner_where_expected() -> None:
    pixels = object_on_transparent()  # object box x 100..228, y 80..208 (128 x 128)
    _, box = prepare_model_image(Image.fromarray(pixels, "RGBA"))
    corner = np.array([100 / 400, 80 / 300])
    expected = 0.5 - 0.5 / 2.2  # the object fills 1 / 2.2 of the square, centred
    np.testing.assert_allclose(box.image_to_crop(corner), [expected, expected], atol=1e-12)
    # in pixels of the 256 model image
    np.testing.assert_allclose(box.image_to_crop(corner) * 256, [256 * expected] * 2, atol=1e-9)


# --- crop -> uncrop -------------------------------------------------------------------------------


def test_crop_uncrop_round_trip_is_exact_for_a_unit_scale_box() -> None:
    pixels = object_on_transparent()
    image = Image.fromarray(pixels, "RGBA")
    composited = np.asarray(Image.alpha_composite(Image.new("RGBA", image.size, (255, 255, 255, 255)), image))[..., :3]
    model_image, box = prepare_model_image(image, crop_scale=2.0, size=256)
    assert (box.left, box.top, box.size) == (36.0, 16.0, 256.0)

    # the marked drag point: top-left object pixel lands at model pixel (64, 64)
    corner = box.image_to_crop(np.array([100 / 400, 80 / 300])) * 256
    np.testing.assert_allclose(corner, [64.0, 64.0], atol=1e-9)
    model = np.asarray(model_image)
    np.testing.assert_array_equal(model, composited[16:272, 36:292])
    np.testing.assert_array_equal(model[64, 64], pixels[80, 100, :3])

    frames = np.stack([model] * 3)
    placed = uncrop_frames(frames, box, background=pixels)
    assert placed.shape == (3, 300, 400, 4) and placed.dtype == np.uint8
    # the crop square comes back as the input itself: the model's white background keyed out again, the
    # object opaque (a transparent render stays transparent for the compositor)
    square = pixels[16:272, 36:292]
    np.testing.assert_array_equal(placed[:, 16:272, 36:292, 3], np.broadcast_to(square[..., 3], (3, 256, 256)))
    visible = square[..., 3] > 0  # colour under zero alpha means nothing
    np.testing.assert_array_equal(
        placed[:, 16:272, 36:292][:, visible, :3], np.broadcast_to(square[visible, :3], (3, visible.sum(), 3))
    )
    outside = np.ones((300, 400), dtype=bool)
    outside[16:272, 36:292] = False
    np.testing.assert_array_equal(placed[:, outside], np.broadcast_to(pixels[outside], (3, outside.sum(), 4)))

    transparent = uncrop_frames(frames, box)
    assert (transparent[:, outside] == 0).all()
    # without the input to compare with, the crop square is the model's frame, opaque
    np.testing.assert_array_equal(transparent[:, 16:272, 36:292, :3], np.broadcast_to(model, (3, 256, 256, 3)))
    assert (transparent[:, 16:272, 36:292, 3] == 255).all()


def test_uncrop_fractional_box_clipped_to_the_image() -> None:
    box = CropBox(left=-30.3, top=10.7, size=90.6, image_width=100, image_height=60)
    frames = np.full((2, 32, 32, 3), 77, dtype=np.uint8)
    background = np.full((60, 100, 3), 5, dtype=np.uint8)
    placed = uncrop_frames(frames, box, background=background)
    # pixels whose centres lie in the box: x 0..59 (centre 59.5 < 60.3), y 11..59 (clipped at the bottom)
    assert (placed[:, 11:, :60] == (77, 77, 77, 255)).all()
    assert (placed[:, :11] == (5, 5, 5, 255)).all()
    assert (placed[:, :, 60:] == (5, 5, 5, 255)).all()


def test_uncrop_box_outside_the_image_leaves_the_background() -> None:
    box = CropBox(left=200.0, top=0.0, size=50.0, image_width=100, image_height=60)
    placed = uncrop_frames(np.zeros((1, 16, 16, 3), dtype=np.uint8), box)
    assert (placed == 0).all()


def test_uncrop_input_errors() -> None:
    box = full_image_box(20, 10)
    with pytest.raises(ValueError, match="frames must be uint8"):
        uncrop_frames(np.zeros((2, 16, 16, 3), dtype=np.float32), box)
    with pytest.raises(ValueError, match="frames must be uint8"):
        uncrop_frames(np.zeros((2, 16, 12, 3), dtype=np.uint8), box)
    with pytest.raises(ValueError, match="background must be uint8 of shape \\(10, 20"):
        uncrop_frames(np.zeros((2, 16, 16, 3), dtype=np.uint8), box, background=np.zeros((20, 10, 4), np.uint8))


def test_uncrop_full_hd_keeps_everything_outside_the_crop() -> None:
    """Full HD, 14 frames (its speed is measured by benchmarks/pipeline.py's postprocess stage, not here)."""
    pixels = object_on_transparent(width=1920, height=1080, box=(700, 300, 1100, 700))
    _, box = prepare_model_image(Image.fromarray(pixels, "RGBA"))
    frames = np.random.default_rng(3).integers(0, 256, size=(14, 256, 256, 3), dtype=np.uint8)
    placed = uncrop_frames(frames, box, background=pixels)
    assert placed.shape == (14, 1080, 1920, 4)
    assert (placed[:, :, :100] == pixels[:, :100]).all()


def test_a_moved_part_leaves_transparency_not_a_white_square() -> None:
    """A generated frame on white over a transparent render: what the model shows as white background is
    transparent again, a part the model moved is opaque where it now is, a still near-white part stays."""
    pixels = np.zeros((40, 40, 4), dtype=np.uint8)
    pixels[10:20, 10:20] = (200, 30, 30, 255)  # a red part
    pixels[25:30, 10:30] = (250, 250, 250, 255)  # a nearly white still part
    frame = np.full((40, 40, 3), 255, dtype=np.uint8)
    frame[10:20, 20:30] = (200, 30, 30)  # the red part moved 10 px right
    frame[25:30, 10:30] = (250, 250, 250)
    keyed = key_out_white(frame, pixels)
    assert (keyed[10:20, 10:20, 3] == 0).all()  # where the part was: background again
    assert (keyed[10:20, 20:30] == (200, 30, 30, 255)).all()  # where it is now
    assert (keyed[25:30, 10:30, 3] == 255).all()  # the still white part keeps its opacity
    assert (keyed[:5, :, 3] == 0).all()
