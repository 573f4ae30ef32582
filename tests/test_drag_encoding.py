"""Drag encoding and positional map against hand-computed values from the model spec."""

from __future__ import annotations

import math

import pytest
import torch

from backend.models import encode_drags, sincos_position_map
from backend.models.drag_conditioning import absent_drags

# Two frames, five slots. Drag 0 starts at (3/32, 1.0): x sits on a cell boundary at r=32 (round
# half to even picks the lower cell) and y = 1.0 (clamped to the last cell, offset 1). It moves to
# (0.5, 0.25) in frame 1. Drag 1 is empty. Drag 2 is all zeros in frame 0 and present in frame 1.
DRAGS = torch.zeros(1, 2, 5, 4)
DRAGS[0, :, 0, :2] = torch.tensor([3 / 32, 1.0])
DRAGS[0, 0, 0, 2:] = torch.tensor([3 / 32, 1.0])
DRAGS[0, 1, 0, 2:] = torch.tensor([0.5, 0.25])
DRAGS[0, 1, 2] = torch.tensor([0.25, 0.75, 0.75, 0.75])

# (frame, channel, row, col, value), worked out by hand from the spec:
# cx = clamp(round(x * r - 0.5), 0, r - 1), value = x * r - cx; same for y.
EXPECTED_MARKS = {
    32: [
        # drag 0, start (3/32, 1): x*r = 3 -> round(2.5) = 2, offset 1; y*r = 32 -> clamp(32) = 31, offset 1
        (0, 0, 31, 2, 1.0), (0, 1, 31, 2, 1.0), (1, 0, 31, 2, 1.0), (1, 1, 31, 2, 1.0),
        # drag 0, current: frame 0 at the start, frame 1 at (0.5, 0.25) -> cell (8, 16), offsets 0
        (0, 2, 31, 2, 1.0), (0, 3, 31, 2, 1.0), (1, 2, 8, 16, 0.0), (1, 3, 8, 16, 0.0),
        # drag 0, last frame's position (0.5, 0.25) in every frame
        (0, 4, 8, 16, 0.0), (0, 5, 8, 16, 0.0), (1, 4, 8, 16, 0.0), (1, 5, 8, 16, 0.0),
        # drag 2, frame 1 only: start (0.25, 0.75) -> 7.5 -> 8, 23.5 -> 24; current/last (0.75, 0.75)
        (1, 12, 24, 8, 0.0), (1, 13, 24, 8, 0.0), (1, 14, 24, 24, 0.0), (1, 15, 24, 24, 0.0),
        (1, 16, 24, 24, 0.0), (1, 17, 24, 24, 0.0),
    ],
    16: [
        # x*r = 1.5 -> round(1.0) = 1, offset 0.5; y*r = 16 -> 15, offset 1
        (0, 0, 15, 1, 0.5), (0, 1, 15, 1, 1.0), (1, 0, 15, 1, 0.5), (1, 1, 15, 1, 1.0),
        (0, 2, 15, 1, 0.5), (0, 3, 15, 1, 1.0), (1, 2, 4, 8, 0.0), (1, 3, 4, 8, 0.0),
        (0, 4, 4, 8, 0.0), (0, 5, 4, 8, 0.0), (1, 4, 4, 8, 0.0), (1, 5, 4, 8, 0.0),
        # drag 2: (0.25, 0.75) -> 3.5 -> 4, 11.5 -> 12; (0.75, 0.75) -> 11.5 -> 12
        (1, 12, 12, 4, 0.0), (1, 13, 12, 4, 0.0), (1, 14, 12, 12, 0.0), (1, 15, 12, 12, 0.0),
        (1, 16, 12, 12, 0.0), (1, 17, 12, 12, 0.0),
    ],
    8: [
        # x*r = 0.75 -> round(0.25) = 0, offset 0.75; y*r = 8 -> 7, offset 1
        (0, 0, 7, 0, 0.75), (0, 1, 7, 0, 1.0), (1, 0, 7, 0, 0.75), (1, 1, 7, 0, 1.0),
        (0, 2, 7, 0, 0.75), (0, 3, 7, 0, 1.0), (1, 2, 2, 4, 0.0), (1, 3, 2, 4, 0.0),
        (0, 4, 2, 4, 0.0), (0, 5, 2, 4, 0.0), (1, 4, 2, 4, 0.0), (1, 5, 2, 4, 0.0),
        # drag 2: (0.25, 0.75) -> 1.5 -> 2, 5.5 -> 6; (0.75, 0.75) -> 5.5 -> 6
        (1, 12, 6, 2, 0.0), (1, 13, 6, 2, 0.0), (1, 14, 6, 6, 0.0), (1, 15, 6, 6, 0.0),
        (1, 16, 6, 6, 0.0), (1, 17, 6, 6, 0.0),
    ],
}  # fmt: skip


@pytest.mark.parametrize("resolution", [32, 16, 8])
def test_encoding_matches_hand_computed_cells(resolution: int) -> None:
    expected = torch.full((1, 2, 30, resolution, resolution), -1.0)
    for frame, channel, row, col, value in EXPECTED_MARKS[resolution]:
        expected[0, frame, channel, row, col] = value
    encoding = encode_drags(DRAGS, resolution, resolution)
    assert encoding.shape == (1, 2, 30, resolution, resolution)
    mismatch = (encoding != expected).nonzero().tolist()
    assert not mismatch, f"cells differing from the spec at r={resolution}: {mismatch[:5]}"


def test_empty_slot_writes_nothing_and_is_absent() -> None:
    encoding = encode_drags(DRAGS, 8, 8)
    assert torch.all(encoding[:, :, 6:12] == -1)  # drag 1: empty
    assert torch.all(encoding[:, 0, 12:18] == -1)  # drag 2 in frame 0, where it is all zeros
    assert torch.all(encoding[:, :, 18:] == -1)  # drags 3, 4
    assert absent_drags(DRAGS).tolist() == [[False, True, False, True, True]]


def test_trajectory_marks_follow_each_frame() -> None:
    frames = 6
    drags = torch.zeros(1, frames, 5, 4)
    t = torch.linspace(0, 1, frames)
    drags[0, :, 0, 0], drags[0, :, 0, 1] = 0.1, 0.2
    drags[0, :, 0, 2], drags[0, :, 0, 3] = 0.1 + 0.8 * t, 0.2
    encoding = encode_drags(drags, 16, 16)
    for n in range(frames):
        x = float(drags[0, n, 0, 2])
        col = min(max(round(x * 16 - 0.5), 0), 15)
        row = round(0.2 * 16 - 0.5)
        marked = (encoding[0, n, 2] != -1).nonzero().tolist()
        assert marked == [[row, col]], f"frame {n}"
        assert encoding[0, n, 2, row, col].item() == pytest.approx(x * 16 - col, abs=1e-6)
        # the last-frame mark is the same cell in every frame
        last_col = round(0.9 * 16 - 0.5)  # x = 0.9 in the last frame -> 13.9 -> 14
        assert (encoding[0, n, 4] != -1).nonzero().tolist() == [[row, last_col]]


def test_encoding_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="batch, frames, num_drags, 4"):
        encode_drags(torch.zeros(2, 5, 4), 8, 8)


def test_position_map_follows_spec_formula() -> None:
    dim, size = 16, 5
    pos = sincos_position_map(dim, size, size, dtype=torch.float64)
    assert pos.shape == (dim, size, size)
    quarter = dim // 4
    for row, col in [(0, 0), (1, 3), (4, 2)]:
        for i in range(quarter):
            omega = 1.0 / 10000 ** (i / quarter)
            # first half encodes x (column), second half y (row); sin block then cos block
            assert pos[i, row, col].item() == pytest.approx(math.sin(col * omega))
            assert pos[quarter + i, row, col].item() == pytest.approx(math.cos(col * omega))
            assert pos[2 * quarter + i, row, col].item() == pytest.approx(math.sin(row * omega))
            assert pos[3 * quarter + i, row, col].item() == pytest.approx(math.cos(row * omega))
