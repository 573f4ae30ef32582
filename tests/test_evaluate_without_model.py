"""``puppet-master evaluate`` without a model: the baselines against the published GIF frames."""

from __future__ import annotations

import csv
import math
import pickle

import numpy as np
import torch
from PIL import Image

from backend.cli import main as cli_main

FRAMES = 6
SIDE = 256  # the GIF's side: the model's, so the resize keeps the frames as they are


def write_example(folder, name: str, shift: float = 0.25) -> None:
    """A pickle in the published layout and its GIF: a red square on white sliding right by ``shift``."""
    drags = torch.zeros(1, FRAMES, 5, 4)
    offsets = torch.linspace(0.0, shift, FRAMES)
    drags[0, :, 0, :2] = torch.tensor([0.35, 0.5])
    drags[0, :, 0, 2], drags[0, :, 0, 3] = 0.35 + offsets, 0.5
    batch = {
        "latents": torch.zeros(1, FRAMES, 4, 4, 4),
        "cond_latent": torch.zeros(1, 4, 4, 4),
        "embedding": torch.zeros(1, 1, 8),
        "drags": drags,
    }
    with open(folder / f"{name}.pkl", "wb") as handle:
        pickle.dump(batch, handle)
    frames = []
    for offset in offsets.tolist():
        pixels = np.full((SIDE, SIDE, 3), 255, dtype=np.uint8)
        left = round((0.25 + offset) * SIDE)
        pixels[96:160, left : left + 52] = (220, 30, 30)
        frames.append(Image.fromarray(pixels))
    frames[0].save(folder / f"{name}.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)


def test_evaluate_without_a_model_scores_the_baselines(tmp_path, capsys) -> None:
    batches = tmp_path / "batches"
    batches.mkdir()
    for index in range(2):
        write_example(batches, f"{index:05d}")
    assert cli_main(["evaluate", "--batches", str(batches), "--out", str(tmp_path / "report")]) == 0

    rows = list(csv.DictReader(open(tmp_path / "report" / "scores.csv")))
    assert [(row["example"], row["method"]) for row in rows] == [
        ("00000", "static first frame"), ("00000", "preview"), ("00001", "static first frame"), ("00001", "preview")
    ]  # fmt: skip
    for row in rows:  # frame 0 is the input of both: reported apart, identical to the truth
        assert float(row["frame0_psnr"]) == math.inf and math.isfinite(float(row["psnr"]))
    static, preview = (float(rows[i]["psnr"]) for i in (0, 1))
    assert preview > static + 10, f"the square slides as one part: preview {preview} dB, static {static} dB"
    table = (tmp_path / "report" / "scores.md").read_text()
    assert "| preview |" in table and "beats static" in table and "| 2 |" in table
    assert "frames 1..F-1" in capsys.readouterr().out


def test_evaluate_without_a_model_needs_the_gifs(tmp_path, capsys) -> None:
    write_example(tmp_path, "00000")
    (tmp_path / "00000.gif").unlink()
    assert cli_main(["evaluate", "--batches", str(tmp_path), "--out", str(tmp_path / "report")]) == 2
    assert "00000.gif is missing: without --model the ground truth is the published GIF" in capsys.readouterr().err
