"""Writers for generated videos: PNG frame sequences, GIF, MP4, drags drawn on, and the JSON run record.

Frames are numpy ``uint8`` arrays ``(F, H, W, 3)`` (RGB) or ``(F, H, W, 4)`` (RGBA). Every writer is
atomic: it writes a hidden temporary file in the destination folder and moves it into place with
``os.replace``, so the Blender add-on (or anything else watching the folder) never reads a
half-written file, and a failed write leaves nothing behind.

GIF and MP4 are previews for people, so RGBA frames are composited over white for them; the PNG
sequence keeps the alpha channel. MP4 needs ffmpeg, which the ``imageio-ffmpeg`` wheel ships.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path, PurePath
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "DRAG_COLORS",
    "draw_drags",
    "find_ffmpeg",
    "write_gif",
    "write_mp4",
    "write_png_sequence",
    "write_record",
]

RGB = tuple[int, int, int]

# One colour per drag slot (the model takes at most 5 drags), shared with the Blender overlay so a
# drag has the same colour in the viewport and in the exported video. Okabe-Ito colours: they stay
# distinguishable for the common colour-vision deficiencies. Yellow is left out: it vanishes on
# the white background of the model image.
DRAG_COLORS: tuple[RGB, ...] = (
    (213, 94, 0),  # vermillion
    (0, 114, 178),  # blue
    (0, 158, 115),  # bluish green
    (230, 159, 0),  # orange
    (204, 121, 167),  # reddish purple
    (86, 180, 233),  # sky blue
)

# Drawn under every stroke and as the stroke of the labels, so drags read on light and dark frames.
_OUTLINE_COLOR: RGB = (20, 20, 20)


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def _check_video(frames: np.ndarray) -> np.ndarray:
    """Return ``frames`` as an array after checking it is ``uint8`` ``(F, H, W, 3|4)`` with F >= 1."""
    video = np.asarray(frames)
    if video.ndim != 4 or video.shape[-1] not in (3, 4) or video.shape[0] < 1:
        raise ValueError(
            f"frames must have shape (F, H, W, 3) or (F, H, W, 4) with F >= 1, got {video.shape}; "
            "pass a single image as frames[None]."
        )
    if video.dtype != np.uint8:
        raise ValueError(
            f"frames must be uint8 (0..255), got dtype {video.dtype}; convert with np.clip(...).astype(np.uint8)."
        )
    return video


def _over_white(video: np.ndarray) -> np.ndarray:
    """Composite RGBA frames over a white background (RGB frames are returned unchanged)."""
    if video.shape[-1] == 3:
        return video
    rgb = video[..., :3].astype(np.uint16)
    alpha = video[..., 3:4].astype(np.uint16)
    # Rounded integer "over": rgb * a + white * (1 - a), with a in [0, 255].
    return ((rgb * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)


def _pad_to_even(video: np.ndarray) -> np.ndarray:
    """Pad the bottom/right edge by one pixel where H or W is odd (yuv420p halves both by 2)."""
    _, height, width, _ = video.shape
    pad_h, pad_w = height % 2, width % 2
    if not (pad_h or pad_w):
        return video
    # Edge replication: the extra row/column continues the picture instead of showing a seam.
    return np.pad(video, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")


@contextmanager
def _atomic_target(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` on success, delete it on error.

    The temporary name starts with a dot (hidden, and not matched by ``frame_*.png`` globs) and
    keeps the real suffix, because ffmpeg picks the container from the extension.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        yield temp
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with _atomic_target(path) as temp:
        temp.write_bytes(data)


def find_ffmpeg() -> str:
    """Return the ffmpeg executable that imageio will use, or raise a ``RuntimeError`` saying how to get one.

    imageio-ffmpeg looks at ``IMAGEIO_FFMPEG_EXE`` first, then the binary in its own wheel, then a
    conda or system ``ffmpeg``.
    """
    try:
        import imageio_ffmpeg
    except ImportError as error:
        raise RuntimeError(
            "Writing MP4 needs the 'imageio-ffmpeg' package, which is not installed; "
            "install it with `pip install imageio-ffmpeg==0.8.1` (it ships an ffmpeg binary)."
        ) from error
    try:
        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as error:
        raise RuntimeError(
            f"Writing MP4 needs ffmpeg, and none was found ({error}). Reinstall 'imageio-ffmpeg' "
            "(its wheel contains ffmpeg), install ffmpeg on the system, or set IMAGEIO_FFMPEG_EXE "
            "to the full path of an ffmpeg executable."
        ) from error
    # imageio-ffmpeg trusts IMAGEIO_FFMPEG_EXE without checking it; check here so the error names it.
    if not (os.path.isfile(exe) or shutil.which(exe)):
        raise RuntimeError(
            f"Writing MP4 needs ffmpeg, but {exe!r} (from IMAGEIO_FFMPEG_EXE or imageio-ffmpeg) does not "
            "exist; point IMAGEIO_FFMPEG_EXE at an ffmpeg executable or unset it to use the bundled one."
        )
    return exe


# ----------------------------------------------------------------------------------------------
# writers
# ----------------------------------------------------------------------------------------------


def _write_png(frame: np.ndarray, path: Path, compress_level: int) -> Path:
    with _atomic_target(path) as temp:
        # format= because the temporary suffix is ".tmp.png" only by convention, not by contract.
        Image.fromarray(frame).save(temp, format="PNG", compress_level=compress_level)
    return path


def write_png_sequence(
    frames: np.ndarray,
    out_dir: str | os.PathLike[str],
    prefix: str = "frame_",
    compress_level: int = 6,
    workers: int = 1,
) -> list[Path]:
    """Write one PNG per frame, ``{prefix}0000.png`` onwards, and return their paths in frame order.

    RGBA frames stay RGBA. Numbers have at least 4 digits (more if there are more frames) so the
    names sort in frame order. ``out_dir`` is created if needed; files of an earlier run with the
    same names are replaced, other files are left alone.

    ``compress_level`` is zlib's 0 (none) .. 9; the default 6 is Pillow's, while 1 encodes about 3x
    faster for files about 40% larger (measured on generated frames). ``workers`` > 1
    encodes frames on that many threads (Pillow's encoder releases the GIL); on error the first
    exception is raised after the other frames are done, each frame still written atomically.
    """
    if not 0 <= compress_level <= 9:
        raise ValueError(f"compress_level must be in 0..9, got {compress_level}.")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}.")
    video = _check_video(frames)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    digits = max(4, len(str(video.shape[0] - 1)))
    paths = [out_dir / f"{prefix}{index:0{digits}d}.png" for index in range(video.shape[0])]
    if workers == 1 or len(paths) == 1:
        return [_write_png(frame, path, compress_level) for frame, path in zip(video, paths, strict=True)]
    with ThreadPoolExecutor(max_workers=min(workers, len(paths))) as pool:
        futures = [
            pool.submit(_write_png, frame, path, compress_level) for frame, path in zip(video, paths, strict=True)
        ]
    return [future.result() for future in futures]


def write_gif(frames: np.ndarray, path: str | os.PathLike[str], fps: float = 7, loop: int = 0) -> Path:
    """Write an animated GIF at ``fps`` frames per second; ``loop=0`` repeats forever.

    RGBA frames are composited over white. GIF stores delays in 1/100 s, so the frame rate is
    rounded to that; Pillow merges consecutive identical frames into one longer frame.
    """
    import imageio.v3 as iio

    video = _over_white(_check_video(frames))
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}.")
    if loop < 0:
        raise ValueError(f"loop must be >= 0 (0 = forever), got {loop}.")
    path = Path(path)
    data = iio.imwrite(
        "<bytes>",
        video,
        plugin="pillow",
        extension=".gif",
        is_batch=True,
        duration=round(1000 / fps),  # milliseconds per frame
        loop=loop,
    )
    _write_bytes_atomic(path, data)
    return path


def write_mp4(frames: np.ndarray, path: str | os.PathLike[str], fps: float = 7, quality: float = 8) -> Path:
    """Write an H.264 MP4 (yuv420p, plays everywhere) at ``fps``; ``quality`` is imageio's 0 (worst) .. 10 (best).

    RGBA frames are composited over white, and odd widths/heights are padded by one edge pixel
    because yuv420p needs even sizes. Raises ``RuntimeError`` if ffmpeg cannot be found.
    """
    import imageio.v2 as iio2

    video = _pad_to_even(_over_white(_check_video(frames)))
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}.")
    if not 0 <= quality <= 10:
        raise ValueError(f"quality must be in 0..10, got {quality}.")
    find_ffmpeg()
    path = Path(path)
    with _atomic_target(path) as temp:
        writer = iio2.get_writer(
            temp,
            format="FFMPEG",
            mode="I",
            fps=fps,
            codec="libx264",
            quality=quality,
            pixelformat="yuv420p",
            macro_block_size=1,  # already padded to even; the default 16 would rescale the video
            ffmpeg_log_level="error",
        )
        try:
            for frame in video:
                writer.append_data(frame)
        finally:
            writer.close()
    return path


def _to_json(value: Any, where: str) -> Any:
    """Convert numpy scalars/arrays, paths, tuples and dataclasses to plain JSON types, recursively."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, PurePath):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, Mapping):
        converted = {}
        for key, item in value.items():
            key = key.item() if isinstance(key, np.generic) else key
            converted[str(key)] = _to_json(item, f"{where}.{key}")
        return converted
    if isinstance(value, list | tuple):
        return [_to_json(item, f"{where}[{index}]") for index, item in enumerate(value)]
    raise TypeError(
        f"write_record: {where} is a {type(value).__name__} ({value!r:.80}), which cannot be written as "
        "JSON; convert it to a number, string, list or dict first."
    )


def write_record(path: str | os.PathLike[str], record: Mapping[str, Any]) -> Path:
    """Write the run record (settings, seed, engine, crop box, timings) as JSON, indent 2, sorted keys.

    Numpy scalars and arrays, ``Path``s, tuples and dataclasses are converted to JSON types; anything
    else that JSON cannot hold raises ``TypeError`` naming the key.
    """
    path = Path(path)
    text = json.dumps(_to_json(record, "record"), indent=2, sort_keys=True) + "\n"
    _write_bytes_atomic(path, text.encode("utf-8"))
    return path


# ----------------------------------------------------------------------------------------------
# drags drawn on frames
# ----------------------------------------------------------------------------------------------


def _heading(points: np.ndarray, current: int) -> np.ndarray | None:
    """Unit direction of the drag at frame ``current``: its last move so far, else its first move, else None."""
    steps = np.diff(points, axis=0)  # [F, 2] -> [F-1, 2], step i goes from frame i to frame i+1
    lengths = np.hypot(steps[:, 0], steps[:, 1])
    moved_so_far = np.flatnonzero(lengths[:current] > 1e-6)
    moved_ever = np.flatnonzero(lengths > 1e-6)
    # Before the drag starts moving (frame 0 above all) the arrow points where it is going to go.
    chosen = moved_so_far[-1] if moved_so_far.size else (moved_ever[0] if moved_ever.size else None)
    if chosen is None:
        return None
    return steps[chosen] / lengths[chosen]


def _circle_box(center: np.ndarray, radius: float) -> tuple[float, float, float, float]:
    """Bounding box ``(left, top, right, bottom)`` of a circle, as ``ImageDraw.ellipse`` takes it."""
    x, y = float(center[0]), float(center[1])
    return (x - radius, y - radius, x + radius, y + radius)


def _arrow_head(tip: np.ndarray, direction: np.ndarray, length: float) -> list[tuple[float, float]]:
    """Triangle with its point at ``tip``, pointing along the unit vector ``direction``."""
    normal = np.array([-direction[1], direction[0]])
    base = tip - direction * length
    corners = (tip, base + normal * length * 0.6, base - normal * length * 0.6)
    return [(float(x), float(y)) for x, y in corners]


def draw_drags(
    frames: np.ndarray,
    trajectories: Sequence[np.ndarray],
    colors: Sequence[RGB] | None = None,
    up_to_current: bool = True,
) -> np.ndarray:
    """Return a copy of ``frames`` with each drag drawn on; the input is not modified.

    Parameters:
        frames: ``uint8`` video ``(F, H, W, 3|4)``. On RGBA frames the drawing is opaque.
        trajectories: one ``(F, 2)`` array per drag: its ``(x, y)`` position in each frame, in pixel
            coordinates of ``frames`` (x right, y down).
        colors: one RGB colour per drag; defaults to ``DRAG_COLORS`` (repeated if there are more drags).
        up_to_current: draw the path from frame 0 to the current frame only (the drag "grows" as the
            video plays); ``False`` draws the whole path in every frame.

    Each drag gets its path, a dot and its 1-based number at the start, and an arrow head at its
    position in the current frame. Line widths and sizes scale with the frame size.
    """
    video = _check_video(frames)
    num_frames, height, width, _ = video.shape
    paths = [np.asarray(points, dtype=np.float64) for points in trajectories]
    for index, points in enumerate(paths):
        if points.shape != (num_frames, 2):
            raise ValueError(
                f"trajectories[{index}] must have shape ({num_frames}, 2) (one pixel position per frame), "
                f"got {points.shape}."
            )
        if not np.isfinite(points).all():
            raise ValueError(f"trajectories[{index}] contains NaN or infinite coordinates.")
    palette = list(colors) if colors is not None else list(DRAG_COLORS)
    if not palette:
        raise ValueError("colors must hold at least one RGB colour, got an empty sequence.")

    # Sizes relative to the short side: 2 px lines at 256 px, 4 px at 576 px.
    line_width = max(2, round(min(height, width) / 160))
    dot_radius = 1.5 * line_width + 1
    head_length = 4 * line_width + 4
    font = ImageFont.load_default(size=max(10, round(min(height, width) / 28)))

    drawn = video.copy()
    for frame_index in range(num_frames):
        image = Image.fromarray(drawn[frame_index])
        draw = ImageDraw.Draw(image)
        last = frame_index if up_to_current else num_frames - 1
        for drag_index, points in enumerate(paths):
            color = tuple(int(c) for c in palette[drag_index % len(palette)])
            polyline = [(float(x), float(y)) for x, y in points[: last + 1]]
            if len(polyline) > 1:
                draw.line(polyline, fill=_OUTLINE_COLOR, width=line_width + 2, joint="curve")
                draw.line(polyline, fill=color, width=line_width, joint="curve")

            start_x, start_y = points[0]
            draw.ellipse(_circle_box(points[0], dot_radius), fill=color, outline=_OUTLINE_COLOR, width=1)

            tip = points[frame_index]
            direction = _heading(points, frame_index)
            if direction is None:  # the drag never moves: mark its position with a ring
                draw.ellipse(_circle_box(tip, head_length / 2), outline=color, width=line_width)
            else:
                draw.polygon(_arrow_head(tip, direction, head_length), fill=color, outline=_OUTLINE_COLOR, width=1)

            # Label above-right of the start dot, kept inside the frame.
            label = str(drag_index + 1)
            left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
            label_x = min(max(start_x + dot_radius + 2, 0), width - (right - left) - 1) - left
            label_y = min(max(start_y - dot_radius - 2 - (bottom - top), 0), height - (bottom - top) - 1) - top
            draw.text((label_x, label_y), label, fill=color, font=font, stroke_width=1, stroke_fill=_OUTLINE_COLOR)
        drawn[frame_index] = np.asarray(image)
    return drawn
