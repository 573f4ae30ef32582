"""The ``puppet-master`` command line, run as a user would."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from backend.cli import main


def test_self_check_console_script_passes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "backend.cli", "self-check", "--frames", "3"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "self-check passed" in result.stdout
    assert "output_shape   (2, 3, 4, 8, 8)" in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_device_is_one_clear_sentence(capsys) -> None:
    assert main(["self-check", "--device", "cuda", "--frames", "2"]) == 2
    error = capsys.readouterr().err
    expected = "puppet-master self-check: device 'cuda' was requested but CUDA is not available on this machine"
    assert error.strip() == expected
