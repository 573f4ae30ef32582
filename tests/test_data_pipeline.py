"""The training-data pipeline: render-animations (bpy, in a subprocess), sample-drags and curate.

Two tiny scenes are built here with bpy: a box whose lid (its own object) hinges open about its
back edge, and a crate that only slides. Both render at 64 px with Workbench, 2 views x 16 frames.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.data import curate, drags
from backend.data.drags import choose_points, deduplicate, drag_motion, drop_small_motion, relative_motion
from backend.data.features import animation_features, kabsch, rigid_residual
from backend.data.geometry import (
    in_image,
    intrinsics_matrix,
    look_at_matrix_world,
    project_points,
    sample_surface_points,
    world_to_camera_from_blender,
)
from backend.data.judges import AnimationJudge, NoJudge, make_judge

REPO = Path(__file__).resolve().parents[1]

BUILD_SCENES = textwrap.dedent(
    """
    import math, sys
    import bpy

    def box(name, size, center):
        mesh = bpy.data.meshes.new(name)
        corners = [(x * size[0] / 2 + center[0], y * size[1] / 2 + center[1], z * size[2] / 2 + center[2])
                   for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]
        faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
        mesh.from_pydata(corners, [], faces)
        obj = bpy.data.objects.new(name, mesh)
        bpy.context.scene.collection.objects.link(obj)
        return obj

    def empty_scene():
        bpy.ops.wm.read_factory_settings(use_empty=True)
        bpy.context.scene.frame_start, bpy.context.scene.frame_end = 1, 16

    empty_scene()
    box("Base", (1.0, 1.0, 0.6), (0.0, 0.0, 0.3))
    lid = box("Lid", (1.0, 1.0, 0.1), (0.0, -0.5, 0.05))  # mesh origin on the back edge
    lid.location = (0.0, 0.5, 0.6)
    lid.keyframe_insert("rotation_euler", frame=1)
    lid.rotation_euler = (math.radians(-100), 0.0, 0.0)  # opens upwards about its back edge
    lid.keyframe_insert("rotation_euler", frame=16)
    bpy.ops.wm.save_as_mainfile(filepath=sys.argv[1])

    empty_scene()
    crate = box("Crate", (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    crate.location = (0.0, 0.0, 0.5)
    crate.keyframe_insert("location", frame=1)
    crate.location = (1.5, 0.0, 0.5)
    crate.keyframe_insert("location", frame=16)
    bpy.ops.wm.save_as_mainfile(filepath=sys.argv[2])
    """
)
RENDER_FLAGS = ["--views", "2", "--resolution", "64", "--points", "300", "--engine", "workbench", "--seed", "3"]


def _run(arguments: list[str]) -> subprocess.CompletedProcess:
    """A Python subprocess in the repository root (bpy state stays out of the test process)."""
    result = subprocess.run(
        [sys.executable, *arguments], cwd=REPO, capture_output=True, text=True, timeout=240, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _render(asset: Path, out: Path) -> subprocess.CompletedProcess:
    return _run(["-m", "backend.data.render", str(asset), "--out", str(out), *RENDER_FLAGS])


def _cli(module, argv: list[str]) -> int:
    """Run one data subcommand in-process through its own ``add_parser``."""
    parser = argparse.ArgumentParser()
    module.add_parser(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.handler(args)


@pytest.fixture(scope="module")
def renders(tmp_path_factory) -> dict[str, Path]:
    if importlib.util.find_spec("bpy") is None:
        pytest.skip("render-animations needs the bpy module (pip install bpy)")
    root = tmp_path_factory.mktemp("data_pipeline")
    script = root / "build_scenes.py"
    script.write_text(BUILD_SCENES)
    _run([str(script), str(root / "hinge.blend"), str(root / "slide.blend")])
    folders = {}
    for name in ("hinge", "slide"):
        folders[name] = root / f"render_{name}"
        _render(root / f"{name}.blend", folders[name])
    return folders


# ---------------------------------------------------------------- render-animations


def test_render_writes_rgba_frames_cameras_points_and_visibility(renders) -> None:
    folder = renders["hinge"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["views"] == ["view_00", "view_01"] and manifest["num_frames"] == 16
    assert manifest["images_rendered"] == 32 and manifest["part_names"] == ["Base", "Lid"]

    points = np.load(folder / "points.npz")
    positions, part_ids = points["positions"], points["part_ids"]
    assert positions.shape == (16, 300, 3) and positions.dtype == np.float32
    assert part_ids.shape == (300,) and points["part_names"].tolist() == ["Base", "Lid"]
    assert points["frames"].tolist() == list(range(1, 17))
    motion = np.linalg.norm(positions[-1] - positions[0], axis=1)
    assert motion[part_ids == 0].max() < 1e-5  # the base never moves
    assert motion[part_ids == 1].min() > 1e-3 and motion.max() > 1.0  # every lid point does

    for view in manifest["views"]:
        cameras = json.loads((folder / view / "cameras.json").read_text())["frames"]
        visibility = np.load(folder / view / "visibility.npy")
        assert len(cameras) == 16 and visibility.shape == (16, 300) and visibility.dtype == bool
        assert 0.1 < visibility[0].mean() < 0.9  # a closed box shows some faces, hides others
        for t, camera in enumerate(cameras):
            assert np.array(camera["K"]).shape == (3, 3) and np.array(camera["world_to_camera"]).shape == (4, 4)
            assert camera["resolution"] == [64, 64]
            image = np.array(Image.open(folder / view / camera["image"]))
            assert image.shape == (64, 64, 4)
            assert image[[0, 0, -1, -1], [0, -1, 0, -1], 3].max() == 0  # transparent corners
            # the depth-tested points land on the rendered object: cameras.json matches the renders
            normalised, depth = project_points(positions[t], camera["K"], camera["world_to_camera"], (64, 64))
            pixels = np.clip((normalised[visibility[t]] * 64).astype(int), 0, 63)
            assert (image[pixels[:, 1], pixels[:, 0], 3] > 0).mean() > 0.95
            assert not (visibility[t] & ~in_image(normalised, depth)).any()


def test_render_resumes_and_refuses_other_settings(renders) -> None:
    folder = renders["slide"]
    asset = folder.parent / "slide.blend"
    (folder / "manifest.json").unlink()
    (folder / "view_01" / "frame_0007.png").unlink()
    assert "1 rendered, 31 reused" in _render(asset, folder).stdout
    assert "already complete" in _render(asset, folder).stdout
    other = subprocess.run(
        [sys.executable, "-m", "backend.data.render", str(asset), "--out", str(folder), "--views", "3"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert other.returncode == 2 and "other settings" in other.stderr


# ---------------------------------------------------------------- sample-drags


def test_drags_start_on_the_lid_only(renders, tmp_path) -> None:
    out = tmp_path / "drags.json"
    assert _cli(drags, ["sample-drags", str(renders["hinge"]), "--out", str(out), "--seed", "1"]) == 0
    samples = json.loads(out.read_text())
    assert samples and {sample["view"] for sample in samples} == {"view_00", "view_01"}
    positions = np.load(renders["hinge"] / "points.npz")["positions"]
    for sample in samples:
        assert sample["start_frame"] == 1 and len(sample["frames"]) == 14
        assert (renders["hinge"] / sample["frames"][0]).is_file()
        assert 1 <= len(sample["drags"]) <= 5 and set(sample["part_names"]) == {"Lid"}
        assert set(sample["part_ids"]) == {1} and sample["motion"] == sorted(sample["motion"], reverse=True)
        cameras = json.loads((renders["hinge"] / sample["view"] / "cameras.json").read_text())["frames"]
        for track, point in zip(sample["drags"], sample["point_ids"], strict=True):
            assert np.array(track).shape == (14, 2)
            start, _ = project_points(positions[0, point], cameras[0]["K"], cameras[0]["world_to_camera"], (64, 64))
            np.testing.assert_allclose(track[0], start, atol=1e-4)


def test_only_moving_visible_points_are_chosen() -> None:
    rng = np.random.default_rng(0)
    positions = np.repeat(rng.random((1, 50, 3)), 14, axis=0)
    positions[:, :10] += np.linspace(0, 1, 14)[:, None, None] * [0.5, 0.0, 0.0]  # points 0-9 move
    motion = relative_motion(positions)
    assert (motion[:10] > 0.02).all() and (motion[10:] == 0).all()
    candidates = (motion > 0.02) & (np.arange(50) % 2 == 0)  # the even ones are visible
    for _ in range(50):
        chosen = choose_points(motion, candidates, 5, rng)
        assert 1 <= len(chosen) <= 5 and set(chosen.tolist()) <= {0, 2, 4, 6, 8}
    assert choose_points(motion, np.zeros(50, bool), 5, rng).size == 0


# ---------------------------------------------------------------- curate


def test_curate_keeps_the_hinge_and_rejects_the_slide(renders, tmp_path) -> None:
    hinge, slide = str(renders["hinge"]), str(renders["slide"])
    assert _cli(curate, ["curate", hinge, slide, "--out", str(tmp_path)]) == 0
    assert (tmp_path / "kept.txt").read_text().split() == [hinge]
    rejected = (tmp_path / "rejected.txt").read_text()
    assert rejected.startswith(slide) and "rigid" in rejected
    header = (tmp_path / "features.csv").read_text().splitlines()[0]
    assert header.startswith("asset,motion_mean,motion_max,moving_fraction,rigid_residual,jerk")


def test_classifier_trains_on_labels_and_reports_cross_validation() -> None:
    rng = np.random.default_rng(0)
    assets = [f"asset_{index}" for index in range(12)]
    features = []
    for index in range(12):
        part_level = index % 2 == 0
        features.append(
            {
                "motion_mean": 0.2,
                "motion_max": 0.8,
                "moving_fraction": 0.5,
                "rigid_residual": 0.6 + 0.1 * rng.random() if part_level else 0.15 + 0.05 * rng.random(),
                "jerk": 0.005,
                "visibility_change": 0.2,
            }
        )
    labels = {asset: "keep" if index % 2 == 0 else "reject" for index, asset in enumerate(assets[:10])}
    decisions, report = curate.decide(assets, features, labels, NoJudge())
    assert report["labels"] == 10 and report["cv_accuracy"] > 0.8
    assert decisions[0] == [] and decisions[1] == ["labelled reject"]
    assert decisions[10] == [] and decisions[11] and "classifier" in decisions[11][0]


def test_rules_name_their_reasons() -> None:
    still = {"motion_mean": 0.0, "motion_max": 0.001, "moving_fraction": 0.0, "rigid_residual": 0.0}
    assert curate.rule_reasons(still | {"jerk": 0.0, "visibility_change": 0.0})[0].startswith("static")
    shaky = {"motion_mean": 0.2, "motion_max": 0.5, "moving_fraction": 0.5, "rigid_residual": 0.7}
    assert curate.rule_reasons(shaky | {"jerk": 0.2, "visibility_change": 0.0})[0].startswith("too jerky")


def test_judges() -> None:
    assert isinstance(NoJudge(), AnimationJudge) and NoJudge().judge(Path("x"), {}) == (True, "")
    with pytest.raises(RuntimeError, match="not configured"):
        make_judge("vlm").judge(Path("x"), {})
    with pytest.raises(ValueError, match="unknown judge"):
        make_judge("gpt")


# ---------------------------------------------------------------- pure functions


def test_projection_matches_a_hand_computed_pinhole() -> None:
    intrinsics = intrinsics_matrix(lens_mm=50.0, sensor_width_mm=50.0, width=100, height=100)  # f = 100 px
    np.testing.assert_allclose(intrinsics, [[100, 0, 50], [0, 100, 50], [0, 0, 1]])
    normalised, depth = project_points(np.array([0.1, -0.2, 1.0]), intrinsics, np.eye(4), (100, 100))
    np.testing.assert_allclose(normalised, [0.6, 0.3])  # u = 100 * 0.1 + 50, v = 100 * -0.2 + 50
    assert depth == pytest.approx(1.0)
    # A Blender camera 5 units in front (-Y) of the origin, looking at it: world +X is image right,
    # world +Z image up (smaller y), and the point is 5 units deep.
    world_to_camera = world_to_camera_from_blender(look_at_matrix_world(np.array([0.0, -5.0, 0.0]), np.zeros(3)))
    normalised, depth = project_points(np.array([1.0, 0.0, 1.0]), intrinsics, world_to_camera, (100, 100))
    np.testing.assert_allclose(normalised, [0.7, 0.3], atol=1e-12)
    assert depth == pytest.approx(5.0)


def test_kabsch_recovers_rigid_motion_and_measures_part_motion() -> None:
    rng = np.random.default_rng(0)
    points = rng.normal(size=(200, 3))
    angle = 0.7
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    fitted_rotation, translation = kabsch(points, points @ rotation.T + [1.0, 2.0, 3.0])
    np.testing.assert_allclose(fitted_rotation, rotation, atol=1e-9)
    np.testing.assert_allclose(translation, [1.0, 2.0, 3.0], atol=1e-9)

    angles = np.linspace(0, np.pi / 2, 10)
    rigid = np.stack(
        [points @ np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]).T + a for a in angles]
    )
    assert rigid_residual(rigid) < 1e-9
    # A hinge: the second half of the points rotates about the x axis, the first half stays.
    hinge = np.repeat(points[None], len(angles), axis=0)
    for t, a in enumerate(angles):
        hinge[t, 100:] = points[100:] @ np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]]).T
    assert rigid_residual(hinge) > 0.3
    features = animation_features(hinge, [])
    assert features["moving_fraction"] == pytest.approx(0.5, abs=0.05) and features["jerk"] < 0.03


def test_deduplicate_keeps_the_larger_of_near_duplicates() -> None:
    t = np.linspace(0, 1, 14)[:, None]
    long = np.array([0.5, 0.5]) + t * [0.3, 0.0]
    almost_same = np.array([0.51, 0.5]) + t * [0.28, 0.01]
    other = np.array([0.2, 0.2]) + t * [0.0, 0.2]
    tracks = np.stack([almost_same, other, long])
    assert deduplicate(tracks).tolist() == [2, 1]
    np.testing.assert_allclose(drag_motion(tracks), [np.hypot(0.28, 0.01), 0.2, 0.3])


def test_small_motion_drops_grow_as_motion_shrinks_and_the_largest_stays() -> None:
    rng = np.random.default_rng(0)
    motion = np.array([0.0, 0.02, 0.05, 0.08, 0.2, 0.01])
    kept = np.mean([drop_small_motion(motion, rng) for _ in range(2000)], axis=0)
    assert kept[4] == 1.0 and kept[0] == 0.0
    assert kept[5] < kept[1] < kept[2] < kept[3] < 1.0
    assert drop_small_motion(np.array([0.001, 0.0]), rng).tolist() == [True, False]


def test_surface_points_are_area_weighted() -> None:
    small = (np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], float), np.array([[0, 1, 2]]))
    large = (np.array([[0, 0, 1], [3, 0, 1], [0, 1, 1]], float), np.array([[0, 1, 2]]))
    mesh_index, vertex_ids, barycentric = sample_surface_points([small, large], 4000, np.random.default_rng(0))
    assert np.mean(mesh_index == 1) == pytest.approx(0.75, abs=0.03)
    assert vertex_ids.shape == (4000, 3) and np.allclose(barycentric.sum(axis=1), 1.0)
    assert (barycentric >= 0).all()
