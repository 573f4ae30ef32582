"""Bake Motion and Drags from Animation inside Blender, against a real backend, with ground truth.

A box with a hinged lid and a cabinet with a sliding drawer are animated and rendered through the
camera to 14 frames (Workbench, ``tests/bake_scenarios.py``). Each rendering becomes a finished job
on a real ``puppet-master serve``: a preview job is submitted with the first frame, and once it has
succeeded its frames on disk are replaced by the rendering (the service serves and tracks what is
in its results folder). In a second Blender, the scene is rebuilt with the part at rest, the frames
are registered as a result, and Bake Motion must key the lid's angle within 2 degrees of the truth
and the drawer's travel within 2 % of its depth, on every frame (the lid also as a pose bone). The
default run bakes one camera per part; ``-m slow`` adds two more angles each. The round trip
blocking -> Drags from Animation -> preview engine -> Bake Motion must move the lid the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from addon_support import backend_server, extension_zip, run_scenario  # noqa: F401 - extension_zip is a fixture
from bake_support import seed_job

SCRIPT = Path(__file__).resolve().parent / "bake_scenarios.py"
FRAMES = 14
MAX_ANGLE_ERROR_DEG = 2.0
MAX_TRAVEL_ERROR = 0.02  # of the drawer's depth
DRAWER_DEPTH = 0.9


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    results = tmp_path_factory.mktemp("bake-backend") / "results"
    with backend_server(results, "--engine", "preview") as url:
        yield url, results


def render_and_bake(
    zip_path: Path, workdir: Path, backend: tuple[str, Path], cases: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Render the cases, make each a job, bake each from rest; the bake scenario's report per case."""
    url, results = backend
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "cases.json").write_text(json.dumps(cases))
    rendered, output = run_scenario(
        "render", zip_path, workdir / "render", "--cases", str(workdir / "cases.json"), "--out",
        str(workdir / "frames"), script=SCRIPT,
    )  # fmt: skip
    for case in rendered["cases"]:
        assert len(list(Path(case["frames"]).glob("frame_*.png"))) == FRAMES, output
        case["job_id"] = seed_job(url, results, case["frames"])
    (workdir / "jobs.json").write_text(json.dumps(rendered["cases"]))
    baked, output = run_scenario(
        "bake", zip_path, workdir / "bake", "--cases", str(workdir / "jobs.json"), "--url", url, script=SCRIPT
    )
    for case in baked["cases"]:
        assert case["result"] == ["FINISHED"], (case["name"], case["error"], output)
    return baked["cases"]


def check_recovered(case: dict[str, Any]) -> None:
    baked, truth = np.asarray(case["values"]), np.asarray(case["truth"])
    assert baked.shape == (FRAMES,), case
    if case["scene"] == "hinge":
        error = np.abs(baked - truth).max()
        assert error <= MAX_ANGLE_ERROR_DEG, (case["name"], error, baked.round(2).tolist())
    else:
        error = np.abs(baked - truth).max() / DRAWER_DEPTH
        assert error <= MAX_TRAVEL_ERROR, (case["name"], error, baked.round(4).tolist())


def cases_for(camera: int) -> list[dict[str, Any]]:
    return [{"name": f"{scene}-camera{camera}", "scene": scene, "camera": camera} for scene in ("hinge", "drawer")]


def test_bake_recovers_the_lid_angle_and_the_drawer_travel(
    extension_zip: Path,  # noqa: F811
    backend: tuple[str, Path],
    tmp_path: Path,
) -> None:
    """Objects, and a pose bone: the lid hinged on an armature's bone, whose keys the bake writes."""
    rigged = {"name": "hinge-bone-camera0", "scene": "hinge", "camera": 0, "rig": True}
    for case in render_and_bake(extension_zip, tmp_path, backend, [*cases_for(0), rigged]):
        check_recovered(case)
        if case.get("rig"):
            assert case["bone_keys"] == list(range(1, FRAMES + 1)), case["bone_keys"]


@pytest.mark.slow
@pytest.mark.parametrize("camera", [1, 2])
def test_bake_recovers_the_motion_from_other_camera_angles(
    extension_zip: Path,  # noqa: F811
    backend: tuple[str, Path],
    tmp_path: Path,
    camera: int,
) -> None:
    for case in render_and_bake(extension_zip, tmp_path, backend, cases_for(camera)):
        check_recovered(case)


def test_bake_refuses_clearly_and_changes_nothing(
    extension_zip: Path,  # noqa: F811
    backend: tuple[str, Path],
    tmp_path: Path,
) -> None:
    url, _results = backend
    frames = tmp_path / "frames"
    frames.mkdir()
    report, output = run_scenario(
        "refusals", extension_zip, tmp_path, "--url", url, "--frames", str(frames), script=SCRIPT
    )
    assert "Generate a result first" in report["no_result"]["error"], report["no_result"]
    assert "Select the objects whose motion to bake" in report["nothing_selected"]["error"]
    assert "The camera sees too little of Lid (0 visible point(s))" in report["unseen"]["error"]
    assert f"no job {'J' * 22}" in report["unknown_job"]["error"], report["unknown_job"]
    assert report["keys_after"] is False  # none of the refusals keyed anything
    assert "has location or rotation keys at two or more frames" in report["drags_unanimated"]["error"]


def test_blocking_to_drags_to_video_to_keys_moves_the_lid_the_same_way(
    extension_zip: Path,  # noqa: F811
    backend: tuple[str, Path],
    tmp_path: Path,
) -> None:
    """Blocking (lid 0 -> 60 degrees) -> Drags from Animation -> Generate (preview engine) -> Bake Motion."""
    url, _results = backend
    report, output = run_scenario("blocking", extension_zip, tmp_path, "--url", url, script=SCRIPT)
    assert report["drags_op"]["result"] == ["FINISHED"], (report["drags_op"], output)
    assert 1 <= len(report["drags"]) <= 5 and all(len(drag) == FRAMES for drag in report["drags"])
    assert report["generate"]["result"] == ["FINISHED"], report["generate"]
    assert report["bake"]["result"] == ["FINISHED"], (report["bake"], output)
    blocking, baked = np.asarray(report["blocking"]), np.asarray(report["bake"]["values"])
    for frame in (FRAMES // 2, FRAMES - 1):  # halfway and at the end: same direction, roughly as far
        assert np.sign(baked[frame]) == np.sign(blocking[frame]), (frame, blocking.round(1), baked.round(1))
        assert 0.5 <= baked[frame] / blocking[frame] <= 1.5, (frame, blocking.round(1), baked.round(1))
