"""Metrics and ``puppet-master evaluate`` on synthetic batches in the Drag-a-Move test format."""

from __future__ import annotations

import csv
import math
import os
import pickle

import pytest
import torch

from backend.cli import main as cli_main
from backend.evaluation.evaluate import load_test_batch
from backend.evaluation.metrics import psnr, ssim
from backend.pipeline.tiny import make_tiny_model


def test_psnr_and_ssim() -> None:
    video = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert psnr(video, video) == math.inf
    assert ssim(video, video) == pytest.approx(1.0)
    shifted = (video + 0.1).clamp(0, 1)
    assert psnr(shifted, video) == pytest.approx(10 * math.log10(1 / torch.mean((shifted - video) ** 2).item()))
    noisy = (video + 0.3 * torch.randn_like(video)).clamp(0, 1)
    assert ssim(noisy, video) < ssim(shifted, video) < 1.0


def write_batch(path, frames: int = 14, **overrides) -> None:
    drags = torch.zeros(1, frames, 5, 4)
    drags[0, :, 0, :2] = torch.tensor([0.4, 0.5])
    drags[0, :, 0, 2] = torch.linspace(0.4, 0.6, frames)
    drags[0, :, 0, 3] = 0.5
    batch = {
        "latents": torch.randn(1, frames, 4, 8, 8) * 0.2,
        "cond_latent": torch.randn(1, 4, 8, 8),
        "embedding": torch.randn(1, 1, 32),
        "drags": drags,
        "meta": {"uid": os.path.basename(path)},
    }
    batch.update(overrides)
    with open(path, "wb") as handle:
        pickle.dump(batch, handle)


def test_evaluate_writes_table_with_baselines(tmp_path) -> None:
    model = make_tiny_model(tmp_path / "model")
    (tmp_path / "batches").mkdir()
    for index in range(2):
        write_batch(tmp_path / "batches" / f"{index:05d}.pkl", frames=6)
    args = ["evaluate", "--model", str(model), "--batches", str(tmp_path / "batches"),
            "--out", str(tmp_path / "report"), "--steps", "2", "--device", "cpu"]  # fmt: skip
    assert cli_main(args) == 0
    rows = list(csv.DictReader(open(tmp_path / "report" / "scores.csv")))
    assert {row["method"] for row in rows} == {"puppet-master", "static first frame", "preview"}
    assert len(rows) == 6 and all(math.isfinite(float(row["psnr"])) for row in rows)
    table = (tmp_path / "report" / "scores.md").read_text()
    assert "| static first frame |" in table and "LPIPS" in table


def test_loader_rejects_code_and_malformed_batches(tmp_path) -> None:
    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo owned",))

    with open(tmp_path / "evil.pkl", "wb") as handle:
        pickle.dump({"latents": Exploit()}, handle)
    with pytest.raises(pickle.UnpicklingError, match="never needs"):
        load_test_batch(tmp_path / "evil.pkl")
    write_batch(tmp_path / "partial.pkl")
    data = pickle.load(open(tmp_path / "partial.pkl", "rb"))
    del data["embedding"]
    pickle.dump(data, open(tmp_path / "partial.pkl", "wb"))
    with pytest.raises(ValueError, match="missing \\['embedding'\\]"):
        load_test_batch(tmp_path / "partial.pkl")
