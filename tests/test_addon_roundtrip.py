"""The add-on against a real backend, inside Blender: capture, generate, save the frames, import them.

Each test runs one scenario of ``tests/addon_scenarios.py`` in a fresh Blender (the ``bpy`` module)
with the built extension installed into a temporary user folder. The backend is the real
``puppet-master serve``: the preview engine, and a tiny random Puppet-Master model on the CPU.
In background mode Generate runs its job synchronously, so the operator's result is the job's.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from addon_support import (  # noqa: F401 - extension_zip is a fixture
    BACKEND_PYTHON,
    backend_server,
    extension_zip,
    free_port,
    run_scenario,
    serve_command,
)

FRAMES = 14


@pytest.fixture(scope="module")
def preview_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with backend_server(tmp_path_factory.mktemp("preview-backend"), "--engine", "preview") as url:
        yield url


@pytest.fixture(scope="module")
def tiny_model_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("tiny-backend")
    model = folder / "model"
    subprocess.run([BACKEND_PYTHON, "-m", "backend.cli", "make-tiny-model", str(model)], check=True, timeout=300)
    extra = ("--engine", "puppet-master", "--model", str(model), "--device", "cpu")
    with backend_server(folder / "results", *extra, timeout=180) as url:
        yield url


def _frames(count: int = FRAMES) -> list[str]:
    return [f"frame_{index:04d}.png" for index in range(count)]


def test_saved_file_generate_then_import_in_every_mode(
    extension_zip: Path,  # noqa: F811
    preview_url: str,
    tmp_path: Path,
) -> None:
    blend = tmp_path / "project" / "door.blend"
    blend.parent.mkdir()
    report, output = run_scenario(
        "roundtrip", extension_zip, tmp_path, "--url", preview_url, "--blend", str(blend), "--imports"
    )

    # generate: one result, saved next to the .blend, stored relative to it
    assert report["generate"] == {"result": ["FINISHED"], "error": ""}, output
    assert report["capture_image"] is None  # Generate sends the render's own PNG and adds no datablock
    (result,) = report["results"]
    job_id = result["job_id"]
    record = json.loads((blend.parent / "puppet_master" / job_id / "record.json").read_text())
    # the camera frame's 4:3 shape, longer side = Capture Size
    assert (record["settings"]["image_width"], record["settings"]["image_height"]) == (64, 48)
    assert result["directory"] == f"//puppet_master/{job_id}/video_0/"
    assert Path(result["abs_directory"]).resolve() == (blend.parent / "puppet_master" / job_id / "video_0").resolve()
    assert result["files"] == _frames()
    assert (result["engine"], result["seed"], result["num_frames"]) == ("preview", 11, FRAMES)
    assert (blend.parent / "puppet_master" / job_id / "record.json").is_file()
    assert report["job_status"].startswith("Done: Generated 1 x 14 frames with the preview engine (a rigid draft")
    # generate added the result and nothing else (auto import off in this scenario)
    assert report["after"] == {**report["before"], "results": 1}

    for mode in ("CAMERA_BACKGROUND", "IMAGE_EMPTY", "SEQUENCER"):
        assert report[f"import_{mode}"]["result"] == ["FINISHED"], report[f"import_{mode}"]
        assert report[f"import_step_{mode}"]["result"] == ["FINISHED"], report[f"import_step_{mode}"]

    # camera background: the SEQUENCE image, timed from Start Frame, stretched over the camera frame
    background = report["background"]
    assert background["count"] == 1 and background["show"] is True
    assert background["alpha"] == pytest.approx(0.4) and background["frame_method"] == "STRETCH"
    assert background["image"]["source"] == "SEQUENCE" and background["image"]["exists"]
    assert background["image"]["filepath"] == f"//puppet_master/{job_id}/video_0/frame_0000.png"
    assert background["image"]["size"] == [64, 48]
    timing = {"frame_duration": FRAMES, "frame_start": 5, "frame_offset": -1, "use_auto_refresh": True}
    assert background["image_user"] == timing

    # image empty: parented to the camera, its picture exactly on the camera frame's corners
    empty = report["empty"]
    assert empty["parent"] == "Camera" and empty["use_alpha"] and empty["alpha"] == pytest.approx(0.4)
    assert empty["image"]["source"] == "SEQUENCE" and empty["image_user"] == timing
    corners = sorted(tuple(round(value, 4) for value in corner) for corner in empty["frame_corners"])
    assert corners == [(0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0)]
    assert empty["depth"] > 0

    # sequencer: an image strip with every frame, from Start Frame
    strip = report["strip"]
    assert strip["type"] == "IMAGE" and strip["elements"] == FRAMES and strip["duration"] == FRAMES
    assert strip["frame_start"] == 5 and strip["first"] == "frame_0000.png"
    assert strip["directory"] == f"//puppet_master/{job_id}/video_0/"
    assert strip["blend_alpha"] == pytest.approx(0.4)

    # frame step 3: every frame held 3 scene frames, in every mode
    step = report["step"]
    assert step["background_duration"] == step["empty_duration"] == step["strip_duration"] == 3 * FRAMES
    assert step["background_image"]["filepath"] == f"//puppet_master/{job_id}/video_0_step3/frame_0000.png"
    assert step["background_image"]["exists"]

    # Keep Previous off: the new import replaced the two earlier camera backgrounds
    assert report["import_replacing"]["result"] == ["FINISHED"]
    assert report["replace"]["before"]["backgrounds"] == 2 and report["replace"]["after"]["backgrounds"] == 1

    # undo takes an import back
    undo = report["undo"]
    assert undo["after_import"]["objects"] == undo["before"]["objects"] + 1
    assert undo["after_undo"] == undo["before"]
    assert report["import_has_undo"]

    # saved and reopened: the history is in the file and the relative paths still resolve
    reopened = report["reopened"]
    assert [item["job_id"] for item in reopened["results"]] == [job_id]
    # the job line is runtime state: not saved, so a reopened file shows no stale job
    assert reopened["stored_job_status"] is None and reopened["job_line"] == ""
    assert reopened["images"] and all(image["exists"] for image in reopened["images"])


def test_unsaved_file_keeps_results_in_the_extension_user_folder(
    extension_zip: Path,  # noqa: F811
    preview_url: str,
    tmp_path: Path,
) -> None:
    report, output = run_scenario("roundtrip", extension_zip, tmp_path, "--url", preview_url, "--auto-import")
    assert report["generate"]["result"] == ["FINISHED"], output
    (result,) = report["results"]
    user_results = tmp_path / "blender-user" / "extensions" / ".user" / "user_default" / "puppet_master" / "results"
    assert Path(result["directory"]).resolve() == (user_results / result["job_id"] / "video_0").resolve()
    assert result["files"] == _frames()
    # auto import in the default mode: one camera background, nothing else
    assert report["after"] == {**report["before"], "results": 1, "images": 1, "backgrounds": 1}


def test_tiny_model_roundtrip(extension_zip: Path, tiny_model_url: str, tmp_path: Path) -> None:  # noqa: F811
    """The diffusion engine end to end (a tiny random model: noise, not motion, but the real code path)."""
    report, output = run_scenario("roundtrip", extension_zip, tmp_path, "--url", tiny_model_url, "--auto-import")
    assert report["generate"]["result"] == ["FINISHED"], output
    (result,) = report["results"]
    assert (result["engine"], result["num_frames"], result["seed"]) == ("puppet-master", FRAMES, 11)
    assert result["files"] == _frames()
    assert report["after"]["backgrounds"] == 1
    assert "preview" not in report["job_status"]


def test_without_requests_and_numpy_the_add_on_installs_draws_drags_and_generates(
    extension_zip: Path,  # noqa: F811
    preview_url: str,
    tmp_path: Path,
) -> None:
    """Debian's Blender ships neither requests nor numpy (issue 12): with both unimportable inside Blender,
    the extension installs and enables, a curve becomes a drag, a drag anchors to the cube, and Generate
    captures, sends, downloads and imports; each import mode works."""
    report, output = run_scenario(
        "roundtrip", extension_zip, tmp_path, "--url", preview_url, "--auto-import", "--imports", "--without-extras"
    )
    assert report["loaded_extras"] == []  # nothing imported them behind the blocker's back
    assert report["install"] == ["FINISHED"], output
    assert report["from_curve"]["result"] == ["FINISHED"] and report["anchor"]["result"] == ["FINISHED"], output
    assert report["drag_tools"] == {"drags": 2, "curve_drag_points": 32, "anchor": "Cube"}
    assert report["generate"] == {"result": ["FINISHED"], "error": ""}, output
    assert report["job_status"].startswith("Done: Generated 1 x 14 frames with the preview engine")
    (result,) = report["results"]
    assert result["files"] == _frames()
    assert report["auto_imported"]["backgrounds"] == 1
    for mode in ("CAMERA_BACKGROUND", "IMAGE_EMPTY", "SEQUENCER"):
        assert report[f"import_{mode}"]["result"] == ["FINISHED"], report[f"import_{mode}"]
    assert "Traceback" not in output, output


def test_ui_flow_worker_thread_timer_and_cancel(extension_zip: Path, tiny_model_url: str, tmp_path: Path) -> None:  # noqa: F811
    """The interactive path: the job in a worker thread, the timer callback mirroring it, Cancel while running."""
    report, output = run_scenario("async", extension_zip, tmp_path, "--url", tiny_model_url)
    assert report["generate_poll_while_running"] is False and report["cancel_poll_while_running"] is True
    statuses = report["statuses"]
    assert any(status.startswith("Sampling ") for status in statuses), statuses  # "Sampling k/n", the phase
    assert statuses[-1].startswith("Done: Generated 1 x 14 frames with the puppet-master engine"), statuses
    done = report["done"]
    # one result, imported as the camera background (the default Import As)
    assert done["counts_after"] == {**done["counts_before"], "results": 1, "images": 1, "backgrounds": 1}
    assert done["progress"] == 1.0 and done["active"] is False and done["generate_poll_after"] is True

    cancel = report["cancel"]
    assert cancel["cancelled_at"], report["cancel_statuses"]
    assert cancel["state"] == "cancelled"
    assert cancel["status"].startswith("Cancelled: Generation cancelled")
    assert cancel["counts_after"] == cancel["counts_before"]  # nothing added for a cancelled job
    assert requests.get(f"{tiny_model_url}/v1/jobs/{cancel['job_id']}", timeout=10).json()["status"] == "cancelled"


def test_undo_after_generate_takes_back_the_import_and_keeps_the_result(
    extension_zip: Path,  # noqa: F811
    preview_url: str,
    tmp_path: Path,
) -> None:
    report, output = run_scenario("undo", extension_zip, tmp_path, "--url", preview_url)
    assert report["generate"]["result"] == ["FINISHED"], output
    after, after_undo = report["after"], report["after_undo"]
    assert after["results"] == 1 and after["backgrounds"] == 1
    assert after_undo["results"] == 1 and after_undo["backgrounds"] == 0  # the import went, the result stayed
    assert report["after_redo"] == after
    assert report["swatch_subtype"] == "COLOR_GAMMA"  # the drag list shows the colours the overlay draws


def test_backend_down_leaves_the_scene_unchanged(extension_zip: Path, tmp_path: Path) -> None:  # noqa: F811
    url = f"http://127.0.0.1:{free_port()}"
    report, _ = run_scenario("backend_down", extension_zip, tmp_path, "--url", url)
    message = (
        f"Cannot reach the Puppet Master backend at {url}: start it with `puppet-master serve` "
        "or set the URL in preferences"
    )
    assert report["generate"]["result"] == ["CANCELLED"]
    assert message in report["generate"]["error"]
    assert report["after"] == report["before"]  # no result, object, image (but the capture) or import
    assert report["job_status"] == f"Failed: {message}"
    assert report["check"]["result"] == ["CANCELLED"] and message in report["check"]["error"]
    assert report["no_camera"]["result"] == ["CANCELLED"]
    assert "has no active camera" in report["no_camera"]["error"]


def test_start_backend_runs_the_command_and_stops_it(extension_zip: Path, tmp_path: Path) -> None:  # noqa: F811
    port = free_port()
    command = " ".join(serve_command(port, tmp_path / "results", "--engine", "preview"))
    url = f"http://127.0.0.1:{port}"
    report, output = run_scenario("start_backend", extension_zip, tmp_path, "--url", url, "--command", command)
    assert report["start"]["result"] == ["FINISHED"], (report, output)
    assert report["again"]["result"] == ["CANCELLED"]  # a second press: it is running already
    assert report["check"]["result"] == ["FINISHED"]
    assert report["status"] == {"engine": "preview", "summary": "preview on cpu"}
    assert Path(report["log"]).is_file() and "puppet-master serve" in Path(report["log"]).read_text()
    assert report["exit_code"] is not None  # disabling the add-on ended the process it started
