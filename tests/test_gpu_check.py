"""``benchmarks/gpu_check.py`` smoke test: the GPU check's table comes out on the CPU with a tiny pipeline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_check_prints_a_row_per_precision_and_compares_with_fp32(tmp_path) -> None:
    command = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--size", "tiny", "--device", "cpu",
               "--steps", "2", "--frames", "4", "--dtypes", "fp16", "--json", str(tmp_path / "rows.json")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    table = [line for line in done.stdout.splitlines() if line.startswith("| fp")]
    assert [line.split("|")[1].strip() for line in table] == ["fp32", "fp16"]
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert rows[0]["mean_diff"] is None  # fp32 is the reference
    # fp16 differs from fp32, but only a little: a broken cast (or comparing a video with itself) fails here
    assert 0 < rows[1]["mean_diff"] < 8 and rows[1]["ms_per_step"] > 0 and rows[1]["seconds_per_video"] > 0
