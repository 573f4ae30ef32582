"""``puppet-master generate`` and ``puppet-master make-tiny-model``."""

from __future__ import annotations

import argparse
import logging
import math
import threading
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from .engines.base import Cancelled, Engine, GenerationRequest
from .engines.config import EngineConfig, add_engine_arguments
from .engines.results import save_result
from .pipeline.preprocess import DEFAULT_CROP_SCALE
from .pipeline.trajectories import EASES, MAX_DRAGS, resample_drag, validate_points_in_image

logger = logging.getLogger(__name__)


def parse_drag(text: str) -> np.ndarray:
    """``"x,y x,y ..."`` -> ``(N, 2)`` array; ValueError with the offending text otherwise."""
    try:
        points = [[float(value) for value in point.split(",")] for point in text.split()]
    except ValueError:
        points = []
    if not points or any(len(point) != 2 for point in points):
        raise ValueError(f"--drag {text!r}: expected points as 'x,y x,y ...' (at least two)")
    if not all(math.isfinite(value) for point in points for value in point):
        raise ValueError(f"--drag {text!r}: every coordinate must be a finite number")
    return np.array(points, dtype=np.float64)


def load_image(path: str) -> Image.Image:
    if Path(path).is_dir():
        raise ValueError(f"--image {path!r} is a folder; give an image file (PNG, JPEG)")
    if not Path(path).is_file():
        raise FileNotFoundError(f"image {path!r} does not exist")
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"cannot read image {path!r}: {error}") from error


def normalised_drags(drags: list[np.ndarray], image: Image.Image, normalized: bool) -> list[np.ndarray]:
    """Drags in normalised image coordinates; pixel drags are checked to lie on the image."""
    width, height = image.size
    if normalized:
        validate_points_in_image(drags, 1.0, 1.0)
        return drags
    return [drag / np.array([width, height]) for drag in validate_points_in_image(drags, width, height)]


def build_engine(args: argparse.Namespace) -> Engine:
    """The engine the command-line flags describe (:func:`backend.engines.factory.create_engine`).

    The factory's own errors (no weights, no such folder or device) say what to do already; anything
    else a model folder makes the loaders raise (a damaged weights file, a broken config) becomes one
    ValueError naming it.
    """
    from .engines.factory import create_engine

    try:
        engine, _reason = create_engine(EngineConfig.from_mapping(args))
    except (ValueError, FileNotFoundError, RuntimeError):
        raise
    except Exception as error:  # noqa: BLE001 - diffusers, transformers and safetensors raise many kinds
        where = f" from {args.model}" if getattr(args, "model", None) else ""
        raise ValueError(
            f"the model could not be loaded{where} ({type(error).__name__}: {error}); the folder is incomplete or "
            "damaged: fetch it again with `puppet-master fetch-weights`, or pass another --model"
        ) from error
    return engine


def prepare_output_folder(out: str) -> Path:
    """``--out`` as a folder that exists and can be written; ValueError in one sentence otherwise.

    Checked before the model loads, so a typo costs a second, not a minute of loading.
    """
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the frames")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ValueError(f"--out {out} cannot be written ({reason}); give a writable folder") from None
    return folder


def run_generate(args: argparse.Namespace) -> int:
    image = load_image(args.image)
    if not args.drag:
        raise ValueError("give at least one --drag 'x,y x,y'")
    request = GenerationRequest(
        image=image,
        drags=normalised_drags([parse_drag(text) for text in args.drag], image, args.normalized),
        num_frames=args.frames,
        steps=args.steps,
        guidance_scale=args.guidance,
        seed=args.seed,
        num_videos=args.num_videos,
        crop_scale=None if args.crop_scale <= 0 else args.crop_scale,
        ease=args.ease,
    )
    # cheap checks first: a bad drag should not wait for the model to load
    if len(request.drags) > MAX_DRAGS:
        raise ValueError(f"at most {MAX_DRAGS} drags (the model's limit), got {len(request.drags)}")
    for drag in request.drags:
        resample_drag(drag, request.num_frames, request.ease)
    prepare_output_folder(args.out)
    engine = build_engine(args)
    description = engine.describe()
    print(f"engine: {description['engine']} on {description['device']} ({description['model']})")
    cancel = threading.Event()
    with tqdm(total=request.steps, desc="generating", unit="step", disable=args.quiet) as bar:

        def progress(step: int, total: int, phase: str = "sampling") -> None:
            bar.set_description(phase)
            bar.total = total
            bar.update(step - bar.n)

        try:
            result = engine.generate(request, progress=progress, cancel=cancel)
        except KeyboardInterrupt:
            cancel.set()
            raise
    record = save_result(result, args.out, gif=args.gif, mp4=args.mp4, overlay=args.overlay)
    print(f"seed {result.seed}: {record['num_videos']} video(s) of {record['num_frames']} frames in {args.out}")
    return 0


def run_make_tiny_model(args: argparse.Namespace) -> int:
    from .pipeline.tiny import make_tiny_model

    path = make_tiny_model(args.directory, seed=args.seed)
    print(f"tiny random Puppet-Master pipeline saved to {path} (for tests and demos; it makes noise, not motion)")
    return 0


def _checked(kind: type, minimum: float, maximum: float | None = None):
    """An argparse type: ``kind`` (int or float) within the bounds; NaN and infinities are refused."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'a whole number' if kind is int else 'a number'}"
            ) from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number")
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            raise argparse.ArgumentTypeError(f"{text} is out of range: must be {bounds}")
        return value

    return parse


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("generate", help="make a video from an image and drags")
    add_engine_arguments(parser.add_argument_group("engine"), default_engine="puppet-master")
    parser.add_argument("--image", required=True, help="input image (RGBA: alpha marks the object)")
    parser.add_argument(
        "--drag", action="append", metavar="'x,y x,y ...'",
        help="a drag as pixel points of the image (2 = straight, more = path, one per frame = timing); repeat",
    )  # fmt: skip
    parser.add_argument("--normalized", action="store_true", help="--drag points are in 0..1, not pixels")
    parser.add_argument("--steps", type=_checked(int, 1, 500), default=50)
    parser.add_argument("--guidance", type=_checked(float, 0.0, 50.0), default=5.0, help="last-frame guidance")
    parser.add_argument("--seed", type=_checked(int, 0, 2**32 - 1), default=None)
    parser.add_argument("--num-videos", type=_checked(int, 1, 16), default=1, help="variations, batched")
    parser.add_argument("--frames", type=_checked(int, 2, 64), default=14)
    parser.add_argument(
        "--crop-scale",
        type=_checked(float, 0.0, 10.0),
        default=DEFAULT_CROP_SCALE,
        help="object crop size (0 = whole image)",
    )
    parser.add_argument("--ease", choices=EASES, default="linear")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--gif", action="store_true", help="also write video_<k>.gif")
    parser.add_argument("--mp4", action="store_true", help="also write video_<k>.mp4")
    parser.add_argument("--overlay", action="store_true", help="draw the drags on the GIF/MP4")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_handle_generate)

    tiny = subparsers.add_parser("make-tiny-model", help="save a tiny random pipeline folder (tests, demos)")
    tiny.add_argument("directory")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(handler=run_make_tiny_model)


def _handle_generate(args: argparse.Namespace) -> int:
    try:
        return run_generate(args)
    except Cancelled:
        print("cancelled; nothing was written")
        return 130
