"""Real ``puppet-master serve`` processes killed with SIGKILL at each stage of a job's life, then restarted:
every accepted job is accounted for (issue 13: 20 of 20 accepted jobs answered 404 after a crash).

The fast test kills one server twice, at chosen moments: with jobs queued, one running and a DELETE
under way, then with a job writing its files. The slow tests (``-m slow``) run the scenarios of
``benchmarks/reliability.py`` at full size and assert its targets; their numbers are in
docs/reliability.md.
"""

from __future__ import annotations

import io
import threading
import time
import zipfile
from pathlib import Path

import pytest
import requests

from benchmarks import reliability
from tests.service_processes import (
    TERMINAL,
    ServerProcess,
    job_body,
    job_states,
    object_png,
    post_job,
    wait_until_finished,
)


def wait_for_phase(url: str, job_id: str, phases: set[str], timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = requests.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()
        if job["status"] == "running" and job["phase"] in phases:
            return job
        assert job["status"] not in TERMINAL, f"the job ended before reaching {phases}: {job}"
        time.sleep(0.003)
    raise AssertionError(f"job {job_id} did not reach {phases} within {timeout} s")


def delete(url: str, job_id: str, answers: list[int]) -> None:
    """DELETE a job; its status goes to ``answers``, or 0 when the server died before answering."""
    try:
        answers.append(requests.delete(f"{url}/v1/jobs/{job_id}", timeout=30).status_code)
    except requests.ConnectionError:
        answers.append(0)


def assert_whole(url: str, job_id: str) -> None:
    """The job succeeded and its zip holds the record and every frame, intact."""
    job = requests.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()
    assert job["status"] == "succeeded", job
    archive = requests.get(f"{url}/v1/jobs/{job_id}/frames.zip", timeout=60)
    assert archive.status_code == 200
    with zipfile.ZipFile(io.BytesIO(archive.content)) as bundle:
        assert len(bundle.namelist()) == 1 + job["result"]["num_frames"] * len(job["result"]["videos"])
        assert bundle.testzip() is None


def test_kill_9_at_each_stage_then_restart_loses_no_accepted_job(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "results", tmp_path / "logs", "--max-queue", "6")
    large = job_body(object_png(768), frames=32, num_videos=2)
    server.start()
    try:
        finished = post_job(server.url, job_body(object_png(128), frames=6)).json()["id"]
        assert wait_until_finished(server.url, [finished]) == {finished: "succeeded"}
        running = post_job(server.url, large).json()["id"]
        queued = [post_job(server.url, job_body(object_png(128), seed=n)).json()["id"] for n in range(3)]
        wait_for_phase(server.url, running, {"sampling", "decoding"})
        answers: list[int] = []
        deleting = threading.Thread(target=delete, args=(server.url, finished, answers))
        deleting.start()
        time.sleep(0.002)
        server.kill()  # 1: queued jobs, one running, a delete under way
        deleting.join(30)

        server.start()
        states = job_states(server.url, [running, *queued])
        assert all(state in ("queued", "running") for state in states.values()), states
        deleted = requests.get(f"{server.url}/v1/jobs/{finished}", timeout=10)
        if answers == [204]:
            assert deleted.status_code == 404
        if deleted.status_code == 200:  # the delete had not begun: the job is whole
            assert_whole(server.url, finished)
        else:
            assert deleted.status_code == 404
        assert not list(server.results_dir.glob(".trash-*"))
        wait_for_phase(server.url, running, {"writing"})
        server.kill()  # 2: a job writing its files, the others queued

        server.start()
        assert wait_until_finished(server.url, [running, *queued], timeout=120) == dict.fromkeys(
            [running, *queued], "succeeded"
        )
        for job_id in (running, *queued):
            assert_whole(server.url, job_id)
        leftovers = reliability.results_leftovers(server.results_dir)
        assert leftovers == []
    finally:
        server.stop()
    logs = server.logs()
    assert "Traceback" not in logs
    assert "resuming 4 job(s) accepted before the restart" in logs


# ------------------------------------------------------------------------------------------------
# the targets of issue 13, at full size (minutes each): python -m pytest -m slow tests/test_service_crashes.py
# ------------------------------------------------------------------------------------------------


def assert_targets(rows: list[reliability.Row]) -> None:
    reliability.print_table(rows)
    missed = [row for row in rows if row.ok is False]
    assert not missed, [row.cells() for row in missed]


@pytest.mark.slow
def test_20_random_kills_lose_no_accepted_job(tmp_path: Path) -> None:
    assert_targets(reliability.run_kills(20, tmp_path))


@pytest.mark.slow
def test_1000_fuzzed_requests_get_no_5xx(tmp_path: Path) -> None:
    assert_targets(reliability.run_fuzz(1000, tmp_path))


@pytest.mark.slow
def test_40_maximum_size_requests_stay_under_2_gib_with_health_under_200_ms(tmp_path: Path) -> None:
    assert_targets(reliability.run_load(40, tmp_path, finish=2))


@pytest.mark.slow
def test_600_slow_connections_are_cut_off(tmp_path: Path) -> None:
    assert_targets(reliability.run_slowloris(600, tmp_path))


@pytest.mark.slow
def test_a_low_open_file_limit_is_reported_as_the_servers_fault(tmp_path: Path) -> None:
    assert_targets(reliability.run_nofile(tmp_path))


@pytest.mark.slow
def test_a_disk_that_is_unwritable_full_then_read_only(tmp_path: Path) -> None:
    rows = reliability.run_disk(tmp_path)
    if rows[0].value.startswith("cannot mount"):
        pytest.skip("mounting a tmpfs needs root")
    assert_targets(rows)
