"""Tests for backend.pipeline.export: PNG/GIF/MP4 writers, drags drawn on frames, the JSON record."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v2 as iio2
import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from backend.pipeline import export
from backend.pipeline.export import (
    DRAG_COLORS,
    draw_drags,
    write_gif,
    write_mp4,
    write_png_sequence,
    write_record,
)


def random_video(
    num_frames: int = 5, height: int = 24, width: int = 32, channels: int = 3, seed: int = 0
) -> np.ndarray:
    """Random uint8 video (F, H, W, C)."""
    return np.random.default_rng(seed).integers(0, 256, (num_frames, height, width, channels), dtype=np.uint8)


def leftover_temp_files(folder: Path) -> list[str]:
    return [path.name for path in folder.iterdir() if ".tmp" in path.name]


@pytest.mark.parametrize("channels, mode", [(3, "RGB"), (4, "RGBA")])
def test_png_sequence_round_trip(tmp_path: Path, channels: int, mode: str) -> None:
    video = random_video(num_frames=12, channels=channels)
    out_dir = tmp_path / "new" / "frames"  # does not exist yet

    paths = write_png_sequence(video, out_dir)

    assert [path.name for path in paths] == [f"frame_{index:04d}.png" for index in range(12)]
    assert sorted(path.name for path in out_dir.iterdir()) == [path.name for path in paths]
    for path, frame in zip(paths, video, strict=True):
        with Image.open(path) as image:
            assert image.mode == mode
            np.testing.assert_array_equal(np.asarray(image), frame)
    assert leftover_temp_files(out_dir) == []


def test_png_sequence_prefix_and_overwrite(tmp_path: Path) -> None:
    write_png_sequence(random_video(num_frames=2, seed=1), tmp_path, prefix="take_")
    second = random_video(num_frames=2, seed=2)
    paths = write_png_sequence(second, tmp_path, prefix="take_")

    assert [path.name for path in paths] == ["take_0000.png", "take_0001.png"]
    np.testing.assert_array_equal(np.asarray(Image.open(paths[1])), second[1])


def test_png_sequence_fast_and_threaded_writes_the_same_pixels(tmp_path: Path) -> None:
    video = random_video(num_frames=9, channels=4)
    paths = write_png_sequence(video, tmp_path, compress_level=1, workers=4)

    assert [path.name for path in paths] == [f"frame_{index:04d}.png" for index in range(9)]
    for path, frame in zip(paths, video, strict=True):
        np.testing.assert_array_equal(np.asarray(Image.open(path)), frame)
    assert leftover_temp_files(tmp_path) == []
    with pytest.raises(ValueError, match="compress_level"):
        write_png_sequence(video, tmp_path, compress_level=10)
    with pytest.raises(ValueError, match="workers"):
        write_png_sequence(video, tmp_path, workers=0)


def test_failed_write_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_save(self: Image.Image, fp: Path, *args: object, **kwargs: object) -> None:
        Path(fp).write_bytes(b"half a png")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        write_png_sequence(random_video(num_frames=1), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_invalid_frames_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\(F, H, W, 3\)"):
        write_png_sequence(np.zeros((8, 8, 3), dtype=np.uint8), tmp_path)
    with pytest.raises(ValueError, match="uint8"):
        write_png_sequence(np.zeros((1, 8, 8, 3), dtype=np.float32), tmp_path)


def test_gif_has_all_frames(tmp_path: Path) -> None:
    video = random_video(num_frames=6, channels=4)
    path = write_gif(video, tmp_path / "preview.gif", fps=10)

    frames = iio.imread(path, index=None)
    assert frames.shape[:3] == (6, 24, 32)
    with Image.open(path) as image:
        assert image.info["loop"] == 0
        assert image.info["duration"] == 100
    assert leftover_temp_files(tmp_path) == []


def test_mp4_pads_odd_sizes(tmp_path: Path) -> None:
    video = random_video(num_frames=7, height=31, width=33, channels=4)
    path = write_mp4(video, tmp_path / "preview.mp4", fps=7)

    with iio2.get_reader(path, format="FFMPEG") as reader:
        frames = [frame for frame in reader]
    assert len(frames) == 7
    assert frames[0].shape == (32, 34, 3)
    assert leftover_temp_files(tmp_path) == []


def test_mp4_without_ffmpeg_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import imageio_ffmpeg

    def no_ffmpeg() -> str:
        raise RuntimeError("No ffmpeg exe could be found.")

    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", no_ffmpeg)
    with pytest.raises(RuntimeError, match="IMAGEIO_FFMPEG_EXE"):
        write_mp4(random_video(), tmp_path / "preview.mp4")
    assert list(tmp_path.iterdir()) == []


def test_mp4_with_missing_ffmpeg_path_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(tmp_path / "no-such-ffmpeg"))
    with pytest.raises(RuntimeError, match="no-such-ffmpeg"):
        export.find_ffmpeg()


def straight_drag(num_frames: int, start: tuple[float, float], end: tuple[float, float]) -> np.ndarray:
    return np.linspace(start, end, num_frames)


@pytest.mark.parametrize("channels", [3, 4])
def test_draw_drags_draws_path_and_keeps_the_rest(channels: int) -> None:
    num_frames, height, width = 5, 64, 96
    video = np.full((num_frames, height, width, channels), 128, dtype=np.uint8)
    original = video.copy()
    drag = straight_drag(num_frames, start=(10, 40), end=(70, 40))

    drawn = draw_drags(video, [drag])

    np.testing.assert_array_equal(video, original)  # input untouched
    assert drawn.shape == video.shape and drawn.dtype == np.uint8
    last = drawn[-1]
    assert tuple(last[40, 40, :3]) == DRAG_COLORS[0]  # on the path
    assert np.any(last[38:43, 66:71] != 128)  # arrow head at the end point
    assert np.any(drawn[0, 38:43, 8:13] != 128)  # start dot from the first frame on
    np.testing.assert_array_equal(last[5:20, 80:], original[-1][5:20, 80:])  # far away: unchanged
    np.testing.assert_array_equal(last[55:, :], original[-1][55:, :])
    if channels == 4:
        assert last[40, 40, 3] == 255
    # The path grows with the video: the middle of the drag is not drawn in frame 0.
    np.testing.assert_array_equal(drawn[0, 40, 40], original[0, 40, 40])
    # ... unless the whole path is asked for.
    whole = draw_drags(video, [drag], up_to_current=False)
    assert tuple(whole[0, 40, 40, :3]) == DRAG_COLORS[0]


def test_draw_drags_colours_and_still_drag() -> None:
    video = np.full((3, 48, 48, 3), 255, dtype=np.uint8)
    moving = straight_drag(3, start=(5, 10), end=(40, 10))
    still = np.tile([[24.0, 36.0]], (3, 1))

    drawn = draw_drags(video, [moving, still], colors=[(255, 0, 0), (0, 0, 255)])

    assert tuple(drawn[-1, 10, 20]) == (255, 0, 0)
    assert np.any(np.all(drawn[-1, 28:45, 16:33] == (0, 0, 255), axis=-1))  # ring around the still drag
    assert len(DRAG_COLORS) >= 5 and len(set(DRAG_COLORS)) == len(DRAG_COLORS)


def test_draw_drags_rejects_wrong_trajectory_shape() -> None:
    with pytest.raises(ValueError, match=r"trajectories\[0\].*\(4, 2\)"):
        draw_drags(np.zeros((4, 16, 16, 3), dtype=np.uint8), [np.zeros((3, 2))])


def test_record_round_trip(tmp_path: Path) -> None:
    record = {
        "seed": np.int64(1234),
        "engine": "preview",
        "settings": {"guidance": np.float32(3.5), "steps": 25, "mask": np.bool_(True)},
        "crop_box": np.array([10, 20, 330, 340]),
        "drags": np.array([[0.25, 0.5], [0.75, 0.5]], dtype=np.float32),
        "timings": {"total_s": np.float64(1.5)},
        "frames_dir": tmp_path / "frames",
        "size": (512, 512),
    }
    path = write_record(tmp_path / "record.json", record)

    text = path.read_text()
    loaded = json.loads(text)
    assert loaded == {
        "seed": 1234,
        "engine": "preview",
        "settings": {"guidance": 3.5, "steps": 25, "mask": True},
        "crop_box": [10, 20, 330, 340],
        "drags": [[0.25, 0.5], [0.75, 0.5]],
        "timings": {"total_s": 1.5},
        "frames_dir": str(tmp_path / "frames"),
        "size": [512, 512],
    }
    assert text.index('"crop_box"') < text.index('"seed"')  # sorted keys
    assert text.startswith('{\n  "')  # indent 2
    assert leftover_temp_files(tmp_path) == []


def test_record_rejects_unknown_types(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"record\.settings\.callback"):
        write_record(tmp_path / "record.json", {"settings": {"callback": object()}})
    assert list(tmp_path.iterdir()) == []
