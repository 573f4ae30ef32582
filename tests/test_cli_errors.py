"""Every bad command line gets one sentence on stderr and exit status 2, never a traceback.

Table-driven: each case is a command line a user could type (a wrong flag value, a file where a
folder belongs, a damaged model folder, ...) and a piece of the sentence it must get. The cases run
``backend.cli.main`` in this process (a fresh interpreter per case would take minutes: the CLI
imports torch and diffusers); one case runs the real ``python -m backend.cli`` to show the same holds
for the process a user starts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.cli import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Files the cases point at: an image, a plain file, a text file posing as a PNG, damaged model folders."""
    from backend.pipeline.tiny import make_tiny_model

    root = tmp_path_factory.mktemp("cli-inputs")
    image = root / "object.png"
    pixels = np.zeros((64, 64, 4), dtype=np.uint8)
    pixels[16:48, 16:48] = (200, 120, 60, 255)
    Image.fromarray(pixels).save(image)
    (root / "a-file").write_text("not a folder")
    (root / "not-an-image.png").write_text("not an image")
    (root / "model-empty").mkdir()
    (root / "model-bad-index").mkdir()
    (root / "model-bad-index" / "model_index.json").write_text("{not json")
    (root / "model-unknown-class").mkdir()
    (root / "model-unknown-class" / "model_index.json").write_text(json.dumps({"_class_name": "Nope"}))
    truncated = make_tiny_model(root / "model-truncated", seed=0)
    weights = sorted(Path(truncated).rglob("*.safetensors"))[0]
    weights.write_bytes(weights.read_bytes()[:100])
    bad_config = make_tiny_model(root / "model-bad-config", seed=0)
    (Path(bad_config) / "image_encoder" / "config.json").write_text("{broken")
    return {
        "image": image,
        "file": root / "a-file",
        "text": root / "not-an-image.png",
        "root": root,
        "out": root / "out",
        **{name: root / f"model-{name}" for name in ("empty", "bad-index", "unknown-class", "truncated", "bad-config")},
    }


def generate(p: dict[str, Path], *extra: str) -> list[str]:
    """A valid ``generate`` command line on the preview engine, plus ``extra`` flags (later flags win)."""
    base = ["generate", "--engine", "preview", "--image", str(p["image"]), "--drag", "10,10 20,20"]
    return [*base, "--out", str(p["out"]), "--quiet", *extra]


def model(p: dict[str, Path], name: str) -> list[str]:
    return generate(p, "--engine", "puppet-master", "--device", "cpu", "--model", str(p[name]))


Case = tuple[str, Callable[[dict[str, Path]], list[str]], str]
CASES: list[Case] = [
    # the command line itself
    ("no command", lambda p: [], "required: COMMAND"),
    ("unknown command", lambda p: ["nope"], "invalid choice: 'nope'"),
    ("unknown flag", lambda p: ["--bogus", "serve"], "unrecognized arguments: --bogus"),
    ("unknown serve flag", lambda p: ["serve", "--gpu"], "unrecognized arguments: --gpu"),
    # serve
    ("port not a number", lambda p: ["serve", "--port", "abc"], "--port: invalid int value"),
    ("port too large", lambda p: ["serve", "--port", "70000"], "--port 70000"),
    ("port negative", lambda p: ["serve", "--port", "-1"], "--port -1"),
    ("public address, no token", lambda p: ["serve", "--host", "0.0.0.0"], "refusing to listen on 0.0.0.0"),
    ("blank token", lambda p: ["serve", "--token", " "], "--token is blank"),
    ("empty token", lambda p: ["serve", "--token", ""], "--token is blank"),
    ("token with a space", lambda p: ["serve", "--token", "two words"], "--token holds spaces"),
    ("token not ASCII", lambda p: ["serve", "--token", "geheimnis-ä"], "non-ASCII"),
    ("results dir is a file", lambda p: ["serve", "--results-dir", str(p["file"])], "a file is in the way"),
    ("results dir under a file", lambda p: ["serve", "--results-dir", str(p["file"] / "x")], "is a file, not a folder"),
    ("results dir not writable", lambda p: ["serve", "--results-dir", "/proc/results"], "cannot be written"),
    ("queue of 0", lambda p: ["serve", "--max-queue", "0"], "--max-queue 0"),
    ("queue not a number", lambda p: ["serve", "--max-queue", "many"], "--max-queue: invalid int value"),
    ("negative size limit", lambda p: ["serve", "--keep-gb", "-1"], "--keep-gb -1"),
    ("age limit NaN", lambda p: ["serve", "--keep-hours", "nan"], "--keep-hours nan"),
    ("size limit infinite", lambda p: ["serve", "--keep-gb", "inf"], "--keep-gb inf"),
    ("unknown engine", lambda p: ["serve", "--engine", "gpu"], "--engine: invalid choice: 'gpu'"),
    ("decode chunk of 0", lambda p: ["serve", "--decode-chunk", "0"], "--decode-chunk"),
    ("job pixel limit too small", lambda p: ["serve", "--max-job-pixels", "5"], "--max-job-pixels 5"),
    ("connection cap too small", lambda p: ["serve", "--max-connections", "1"], "--max-connections 1"),
    # generate: flag values
    ("guidance NaN", lambda p: generate(p, "--guidance", "nan"), "--guidance: nan is not a finite number"),
    ("guidance infinite", lambda p: generate(p, "--guidance", "inf"), "--guidance: inf is not a finite number"),
    ("guidance negative", lambda p: generate(p, "--guidance", "-1"), "--guidance: -1 is out of range"),
    ("steps 0", lambda p: generate(p, "--steps", "0"), "--steps: 0 is out of range"),
    ("steps fractional", lambda p: generate(p, "--steps", "1.5"), "--steps: '1.5' is not a whole number"),
    ("one frame", lambda p: generate(p, "--frames", "1"), "--frames: 1 is out of range"),
    ("frames NaN", lambda p: generate(p, "--frames", "nan"), "--frames: 'nan' is not a whole number"),
    ("seed negative", lambda p: generate(p, "--seed", "-1"), "--seed: -1 is out of range"),
    ("no videos", lambda p: generate(p, "--num-videos", "0"), "--num-videos: 0 is out of range"),
    ("crop scale NaN", lambda p: generate(p, "--crop-scale", "nan"), "--crop-scale: nan is not a finite number"),
    ("crop scale negative", lambda p: generate(p, "--crop-scale", "-2"), "--crop-scale: -2 is out of range"),
    ("unknown ease", lambda p: generate(p, "--ease", "bounce"), "--ease: invalid choice: 'bounce'"),
    ("no --out", lambda p: generate(p)[:-3], "required: --out"),
    ("no --image", lambda p: ["generate", "--drag", "1,1 2,2", "--out", "x"], "required: --image"),
    # generate: drags
    ("no drag", lambda p: [a for a in generate(p) if a not in ("--drag", "10,10 20,20")], "at least one --drag"),
    ("drag of one point", lambda p: generate(p, "--drag", "5,5"), "at least 2 points"),
    ("drag not numbers", lambda p: generate(p, "--drag", "a,b c,d"), "--drag 'a,b c,d'"),
    ("drag NaN", lambda p: generate(p, "--drag", "nan,1 2,2"), "finite number"),
    ("drag off the image", lambda p: generate(p, "--drag", "1000,1000 2000,2000"), "outside"),
    ("six drags", lambda p: generate(p, *["--drag", "1,1 2,2"] * 5), "at most 5 drags"),
    # generate: files and folders
    ("image missing", lambda p: generate(p, "--image", str(p["root"] / "missing.png")), "does not exist"),
    ("image not an image", lambda p: generate(p, "--image", str(p["text"])), "cannot read image"),
    ("image is a folder", lambda p: generate(p, "--image", str(p["root"])), "is a folder; give an image file"),
    ("--out is a file", lambda p: generate(p, "--out", str(p["file"])), "is a file; give a folder"),
    ("--out under a file", lambda p: generate(p, "--out", str(p["file"] / "sub")), "cannot be written"),
    # generate: model folders
    ("model folder missing", lambda p: model(p, "root")[:-1] + [str(p["root"] / "nothing")], "nothing"),
    ("model folder empty", lambda p: model(p, "empty"), "could not be loaded"),
    ("model index not JSON", lambda p: model(p, "bad-index"), "could not be loaded"),
    ("model index of an unknown class", lambda p: model(p, "unknown-class"), "expected ['feature_extractor'"),
    ("weights file truncated", lambda p: model(p, "truncated"), "could not be loaded"),
    ("component config broken", lambda p: model(p, "bad-config"), "could not be loaded"),
    ("model is a file", lambda p: model(p, "root")[:-1] + [str(p["file"])], "a-file"),
    ("unknown device", lambda p: model(p, "truncated") + ["--device", "banana"], "banana"),
    ("unknown dtype", lambda p: model(p, "truncated") + ["--dtype", "int3"], "int3"),
    # make-tiny-model
    ("tiny model onto a file", lambda p: ["make-tiny-model", str(p["file"])], "Not a directory"),
    ("tiny model under a file", lambda p: ["make-tiny-model", str(p["file"] / "x")], "Not a directory"),
    ("tiny model, no folder", lambda p: ["make-tiny-model"], "required: directory"),
]


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int | str | None, str]:
    """``main(argv)`` as the console script runs it: its exit status and what it wrote to stderr."""
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse exits itself
        status = exit_.code
    return status, capsys.readouterr().err


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert len({name for name, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize(("name", "argv", "expected"), CASES, ids=[case[0] for case in CASES])
def test_a_bad_command_line_gets_one_sentence_and_status_2(
    name: str,
    argv: Callable[[dict[str, Path]], list[str]],
    expected: str,
    inputs: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.delenv("PUPPET_MASTER_TOKEN", raising=False)
    inputs = inputs | {"out": tmp_path / "out"}
    status, stderr = run_cli(argv(inputs), capsys)
    lines = stderr.strip().splitlines()
    assert status == 2, (name, status, stderr)
    assert len(lines) == 1, (name, stderr)
    assert "Traceback" not in stderr
    assert lines[0].startswith("puppet-master"), lines[0]
    assert expected in lines[0], (name, lines[0])
    assert not (inputs["out"] / "video_0").exists(), "a refused command wrote results"


def test_the_real_console_process_says_it_in_one_line_too(inputs: dict[str, Path]) -> None:
    command = [sys.executable, "-m", "backend.cli", "serve", "--results-dir", str(inputs["file"])]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert completed.returncode == 2, completed.stderr
    assert completed.stderr.strip().splitlines() == [
        f"puppet-master serve: --results-dir {inputs['file']}: a file is in the way; give a folder"
    ]
