"""Faults of the server itself (a full or read-only disk, no file handles, no memory) are reported as what they
are; cancel and delete mean what they answer; the docs need the token; leftovers of a crash are cleaned.

Real uvicorn servers on 127.0.0.1 in this process; the faults are injected where the disk or the
operating system would raise them (the same ``OSError``/``sqlite3`` errors, with a server path in them
that must not reach the client). The same faults on a real full or read-only file system, and crashes
of real server processes, are in ``test_service_crashes.py``.
"""

from __future__ import annotations

import errno
import gc
import logging
import os
import sqlite3
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import pytest
import requests

from backend.engines.preview import PreviewEngine
from backend.service import faults
from backend.service import images as images_module
from backend.service import storage as storage_module
from backend.service.journal import JobJournal
from backend.service.logs import RepeatFilter
from backend.service.registry import new_job_id
from backend.service.schemas import JobSettings, OutputOptions
from backend.service.storage import ResultStore
from tests.test_service import DRAGS, StepEngine, finished, job_body, serve, wait_for

SERVER_PATH = "/srv/secret/install/path"


def os_error(code: int) -> OSError:
    """The OSError the system raises for ``code``, naming a file of the server's (which must not leak)."""
    return OSError(code, os.strerror(code), f"{SERVER_PATH}/file.png")


def raising(error: BaseException):
    """A stand-in for a function that fails with ``error``, whatever it is given."""

    def fail(*args: Any, **kwargs: Any) -> None:
        raise error

    return fail


def submit(base: str, **overrides: Any) -> requests.Response:
    return requests.post(f"{base}/v1/jobs", json=job_body(**overrides), timeout=30)


def message(response: requests.Response) -> str:
    return response.json()["detail"][0]["message"]


# ------------------------------------------------------------------------------------------------
# the disk
# ------------------------------------------------------------------------------------------------


def test_a_full_disk_while_writing_fails_the_job_with_its_reason_and_the_next_job_runs(tmp_path: Path, monkeypatch):
    real_write = storage_module.write_videos
    calls = []

    def full_disk(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise os_error(errno.ENOSPC)
        return real_write(*args, **kwargs)

    monkeypatch.setattr(storage_module, "write_videos", full_disk)
    with serve(tmp_path, StepEngine()) as server:
        first = submit(server.url).json()
        job = wait_for(server.url + first["url"], finished)
        assert job["status"] == "failed" and job["result"] is None
        assert "results could not be saved: the server's results disk is full" in job["error"]
        assert SERVER_PATH not in job["error"]
        assert not (tmp_path / "results" / first["id"] / "video_0").exists()  # the partial files are gone

        second = submit(server.url).json()
        assert wait_for(server.url + second["url"], finished)["status"] == "succeeded"


def test_a_record_that_cannot_be_written_never_shows_succeeded_and_the_job_survives_a_restart(
    tmp_path: Path, monkeypatch
):
    real = storage_module.write_durably
    monkeypatch.setattr(storage_module, "write_durably", raising(os_error(errno.ENOSPC)))
    seen = []
    with serve(tmp_path, StepEngine(step_s=0.01)) as server:
        job_id = submit(server.url, steps=5).json()["id"]
        job = wait_for(f"{server.url}/v1/jobs/{job_id}", lambda job: seen.append(job["status"]) or finished(job))
    assert "succeeded" not in seen
    assert job["status"] == "failed" and "disk is full" in job["error"], job
    assert not (tmp_path / "results" / job_id / "video_0").exists()

    monkeypatch.setattr(storage_module, "write_durably", real)  # the disk has room again
    with serve(tmp_path, StepEngine()) as server:
        after = requests.get(f"{server.url}/v1/jobs/{job_id}", timeout=10).json()
        assert after["status"] == "failed" and after["error"] == job["error"]
    assert (tmp_path / "results" / job_id / "record.json").exists()  # written now; the journal let it go
    assert len(JobJournal(tmp_path / "results")) == 0


def test_a_journal_on_a_full_disk_answers_507_and_keeps_nothing(tmp_path: Path, monkeypatch):
    def full(self, *args: Any) -> None:
        error = sqlite3.OperationalError("database or disk is full")
        error.sqlite_errorcode = 13  # SQLITE_FULL
        raise error

    monkeypatch.setattr(JobJournal, "add", full)
    with serve(tmp_path, StepEngine()) as server:
        response = submit(server.url)
        assert response.status_code == 507, response.text
        assert message(response).startswith("accepting the job failed: the server's results disk is full")
        assert "Retry-After" not in response.headers
        assert requests.get(f"{server.url}/v1/jobs", timeout=10).json()["jobs"] == []
        assert requests.get(f"{server.url}/v1/health", timeout=10).json()["queue_length"] == 0


def test_a_read_only_results_folder_refuses_delete_honestly_and_still_serves_the_zip(tmp_path: Path, monkeypatch):
    with serve(tmp_path, PreviewEngine()) as server:
        job_id = submit(server.url, frames=4).json()["id"]
        assert wait_for(f"{server.url}/v1/jobs/{job_id}", finished)["status"] == "succeeded"
        folder = tmp_path / "results" / job_id
        before = sorted(path.relative_to(folder) for path in folder.rglob("*"))

        monkeypatch.setattr(storage_module.os, "rename", raising(os_error(errno.EROFS)))
        refused = requests.delete(f"{server.url}/v1/jobs/{job_id}", timeout=10)
        assert refused.status_code == 503, refused.text
        assert "results folder is read-only" in message(refused) and SERVER_PATH not in refused.text
        assert requests.get(f"{server.url}/v1/jobs/{job_id}", timeout=10).json()["status"] == "succeeded"

        archive = requests.get(f"{server.url}/v1/jobs/{job_id}/frames.zip", timeout=30)
        assert archive.status_code == 200 and archive.headers["content-type"] == "application/zip"
        assert archive.content[:2] == b"PK" and len(archive.content) > 1000
        assert sorted(path.relative_to(folder) for path in folder.rglob("*")) == before  # nothing written

        monkeypatch.undo()
        assert requests.delete(f"{server.url}/v1/jobs/{job_id}", timeout=10).status_code == 204
        assert requests.get(f"{server.url}/v1/jobs/{job_id}", timeout=10).status_code == 404
    assert not folder.exists()


def test_a_crash_half_way_through_a_delete_leaves_no_half_job(tmp_path: Path, monkeypatch):
    """The folder is renamed to a tombstone before anything is deleted: a job is whole or gone."""
    with serve(tmp_path, PreviewEngine()) as server:
        job_id = submit(server.url, frames=6).json()["id"]
        wait_for(f"{server.url}/v1/jobs/{job_id}", finished)

        def crash(path: Any, ignore_errors: bool = False) -> None:  # dies after the rename, before any file goes
            raise SystemExit("killed")

        monkeypatch.setattr(storage_module.shutil, "rmtree", crash)
        with pytest.raises(SystemExit):
            server.app.state.store.delete(job_id)
    monkeypatch.undo()
    tombstones = list((tmp_path / "results").glob(".trash-*"))
    assert len(tombstones) == 1 and len(list(tombstones[0].rglob("*.png"))) == 6

    with serve(tmp_path, PreviewEngine()) as server:  # the restart finishes the delete
        assert requests.get(f"{server.url}/v1/jobs/{job_id}", timeout=10).status_code == 404
    assert not list((tmp_path / "results").glob(".trash-*"))


def test_leftovers_of_a_crash_are_removed_at_start_and_temporary_files_count_as_size(tmp_path: Path):
    results = tmp_path / "results"
    with serve(tmp_path, PreviewEngine()) as server:
        job_id = submit(server.url, frames=3).json()["id"]
        wait_for(f"{server.url}/v1/jobs/{job_id}", finished)
    folder = results / job_id
    stray = folder / "video_0" / ".frame_0001.ab12.tmp.png"
    stray.write_bytes(b"x" * 5000)
    assert ResultStore(results).size(job_id) >= 5000  # --keep-gb counts what the disk holds
    partial = results / new_job_id()  # a job interrupted while writing, and not in the journal
    (partial / "video_0").mkdir(parents=True)
    (partial / "video_0" / "frame_0000.png").write_bytes(b"x" * 3000)
    (results / ".trash-old").mkdir()
    (results / ".trash-old" / "frame_0000.png").write_bytes(b"x" * 100)
    (results / ".record.json.9f.tmp").write_bytes(b"{")

    found = ResultStore(results).remove_leftovers()
    assert (found.files, found.bytes) == (4, 5000 + 3000 + 100 + 1)
    assert sorted(path.name for path in results.iterdir() if not path.name.startswith("jobs.sqlite3")) == [job_id]
    assert not stray.exists() and (folder / "record.json").exists()
    with serve(tmp_path, PreviewEngine()) as server:
        assert requests.get(f"{server.url}/v1/jobs/{job_id}/frames/2.png", timeout=10).status_code == 200


# ------------------------------------------------------------------------------------------------
# the machine: file handles, memory
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status", "reason"),
    [
        (os_error(errno.EMFILE), 503, "the server has run out of open file handles; retry in about 5 s"),
        (MemoryError(), 503, "the server is out of memory; retry in about 10 s"),
        (os_error(errno.EIO), 503, "the server's results disk reported an I/O error; this is a problem on"),
    ],
    ids=["no file handles", "no memory", "I/O error"],
)
def test_a_server_fault_while_decoding_is_the_servers_not_a_4xx_blaming_the_image(
    tmp_path: Path, monkeypatch, error: BaseException, status: int, reason: str
):
    monkeypatch.setattr(images_module.Image, "open", raising(error))
    with serve(tmp_path, StepEngine()) as server:
        response = submit(server.url)
    assert response.status_code == status, response.text
    assert response.json()["detail"][0]["field"] is None  # not the image's fault
    assert message(response).startswith(f"decoding the image failed: {reason}")
    assert SERVER_PATH not in response.text and ".venv" not in response.text
    if "retry in" in reason:
        assert int(response.headers["Retry-After"]) >= 1


def test_no_file_handles_while_serving_a_frame_is_a_503_with_retry_after(tmp_path: Path, monkeypatch):
    with serve(tmp_path, PreviewEngine()) as server:
        job_id = submit(server.url, frames=2).json()["id"]
        wait_for(f"{server.url}/v1/jobs/{job_id}", finished)
        monkeypatch.setattr("backend.service.routers.job_files.os.stat", raising(os_error(errno.EMFILE)))
        response = requests.get(f"{server.url}/v1/jobs/{job_id}/frames/0.png", timeout=10)
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert message(response) == "the server has run out of open file handles; retry in about 5 s"


def test_fault_messages_name_no_paths_and_say_what_to_do() -> None:
    for code in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EMFILE, errno.EIO, errno.ELOOP):
        fault = faults.classify(os_error(code), "saving the results")
        assert SERVER_PATH not in fault.message and fault.message.startswith("saving the results failed: ")
        assert fault.status == (507 if code == errno.ENOSPC else 503)
    assert faults.classify(os_error(errno.ENOSPC)).message.endswith(
        "free space on that disk or lower --keep-gb on the server, then retry"
    )
    assert faults.describe(os_error(errno.EMFILE)) == "OSError: [Errno 24] Too many open files"


def test_a_repeated_error_is_logged_a_few_times_then_counted(monkeypatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("backend.service.logs.time.monotonic", lambda: clock[0])
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    handler.addFilter(RepeatFilter(burst=3, window_s=60))
    logger = logging.getLogger("tests.flood")
    logger.addHandler(handler)
    logger.propagate = False

    def fail_many(times: int) -> None:
        for _ in range(times):
            try:
                raise os_error(errno.EMFILE)
            except OSError:
                logger.exception("accept failed")

    try:
        fail_many(10_000)
        clock[0] += 61  # the next window
        fail_many(1)
    finally:
        logger.removeHandler(handler)
    assert len(records) == 4
    assert [record.exc_info is not None for record in records] == [True, False, False, True]  # one per window
    assert "[9997 more like this in the last 60 s not shown]" in records[-1].getMessage()


# ------------------------------------------------------------------------------------------------
# cancel and delete mean what they answer
# ------------------------------------------------------------------------------------------------


def test_a_delete_while_the_results_are_committed_waits_and_deletes_never_answering_a_cancel_that_fails(
    tmp_path: Path, monkeypatch
):
    real = ResultStore.write_record
    committing, release = threading.Event(), threading.Event()

    def slow_commit(self: ResultStore, job_id: str, record: dict) -> None:
        committing.set()
        release.wait(10)
        real(self, job_id, record)

    monkeypatch.setattr(ResultStore, "write_record", slow_commit)
    with serve(tmp_path, StepEngine()) as server:
        job_id = submit(server.url).json()["id"]
        assert committing.wait(10)
        answers: list[requests.Response] = []
        deleting = threading.Thread(
            target=lambda: answers.append(requests.delete(f"{server.url}/v1/jobs/{job_id}", timeout=30))
        )
        deleting.start()
        time.sleep(0.3)
        assert not answers, "DELETE answered before the commit ended"
        release.set()
        deleting.join(30)
        assert answers[0].status_code == 204, answers[0].text
        assert requests.get(f"{server.url}/v1/jobs/{job_id}", timeout=10).status_code == 404
    assert not (tmp_path / "results" / job_id).exists()


def test_every_delete_answer_comes_true(tmp_path: Path) -> None:
    """DELETEs at random moments of a job's life: 202 with cancel_requested ends cancelled, 202 cancelled is
    cancelled, 204 is gone; no answer is taken back."""
    import random

    rng = random.Random(7)
    with serve(tmp_path, StepEngine(step_s=0.004), max_queue=50) as server:
        outcomes = []
        for _ in range(24):
            job_id = submit(server.url, steps=rng.randint(1, 12)).json()["id"]
            time.sleep(rng.uniform(0, 0.06))
            answer = requests.delete(f"{server.url}/v1/jobs/{job_id}", timeout=30)
            after = requests.get(f"{server.url}/v1/jobs/{job_id}", timeout=10)
            if answer.status_code == 204:
                assert after.status_code == 404
                outcomes.append("deleted")
                continue
            assert answer.status_code == 202, answer.text
            body = answer.json()
            assert body["status"] == "cancelled" or body["cancel_requested"] is True, body
            final = wait_for(f"{server.url}/v1/jobs/{job_id}", finished)
            assert final["status"] == "cancelled" and final["result"] is None, final
            outcomes.append(body["status"])
    assert len(set(outcomes)) >= 2, outcomes  # the timing spread reached more than one outcome


# ------------------------------------------------------------------------------------------------
# accepted jobs survive a restart (in-process: a clean shutdown; kill -9 is in test_service_crashes.py)
# ------------------------------------------------------------------------------------------------


def test_jobs_waiting_or_running_at_a_shutdown_run_after_the_restart(tmp_path: Path) -> None:
    with serve(tmp_path, StepEngine(step_s=0.05)) as server:
        ids = [submit(server.url, steps=100, seed=n).json()["id"] for n in range(3)]
        wait_for(f"{server.url}/v1/jobs/{ids[0]}", lambda job: job["status"] == "running" and job["step"] > 0)
    journal = JobJournal(tmp_path / "results")
    assert [(entry.id, entry.state, entry.attempts) for entry in journal.entries()] == [(i, "queued", 0) for i in ids]
    journal.close()

    with serve(tmp_path, StepEngine()) as server:
        jobs = [wait_for(f"{server.url}/v1/jobs/{job_id}", finished) for job_id in ids]
    assert [job["status"] for job in jobs] == ["succeeded"] * 3
    assert [job["result"]["seed"] for job in jobs] == [0, 1, 2]


def test_a_job_that_was_running_at_three_crashes_fails_with_the_reason_and_a_lost_input_too(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    journal = JobJournal(results)
    settings = JobSettings(
        drags=DRAGS, frames=4, steps=2, guidance=5.0, seed=1, num_videos=1, crop_scale=2.2, ease="linear",
        output=OutputOptions(), image_width=96, image_height=64,
    )  # fmt: skip
    crashing, lost = new_job_id(), new_job_id()
    journal.add(crashing, time.time(), settings.model_dump_json(), b"\x89PNG")
    for _ in range(3):
        journal.start(crashing)
    journal.add(lost, time.time(), settings.model_dump_json(), b"\x89PNG")
    journal.keep_finished(lost, "queued", None)  # the row without its image
    journal.close()

    with serve(tmp_path, StepEngine()) as server:
        first = requests.get(f"{server.url}/v1/jobs/{crashing}", timeout=10).json()
        second = requests.get(f"{server.url}/v1/jobs/{lost}", timeout=10).json()
    assert first["status"] == "failed" and first["error"].startswith("interrupted by a restart each of the 3 times")
    assert second["status"] == "failed" and second["error"].startswith("interrupted by a restart, and its input")


def test_the_journal_is_durable_sqlite(tmp_path: Path) -> None:
    journal = JobJournal(tmp_path)
    assert journal._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert journal._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: fsync at every commit
    job_id = new_job_id()
    journal.add(job_id, 1.0, "{}", b"image")
    assert journal.start(job_id) == (b"image", 1)
    journal.requeue(job_id)
    assert [(entry.state, entry.attempts, entry.has_image) for entry in journal.entries()] == [("queued", 0, True)]
    journal.keep_finished(job_id, "failed", "disk full")
    assert [(entry.state, entry.error, entry.has_image) for entry in journal.entries()] == [
        ("failed", "disk full", False)
    ]
    journal.remove(job_id)
    assert len(journal) == 0


# ------------------------------------------------------------------------------------------------
# memory: finished jobs live on disk
# ------------------------------------------------------------------------------------------------


def deep_size(root: object) -> int:
    """Bytes of ``root`` and every object it reaches, except classes, modules and functions (shared code)."""
    seen: set[int] = set()
    stack, total = [root], 0
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, type | types.ModuleType | types.FunctionType):
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        stack.extend(gc.get_referents(item))
    return total


def test_a_finished_job_keeps_a_few_kilobytes_in_memory(tmp_path: Path) -> None:
    long_drags = [[[0.2 + 0.6 * n / 999, 0.5] for n in range(1000)] for _ in range(5)]
    with serve(tmp_path, StepEngine(), max_queue=50) as server:
        ids = [submit(server.url, drags=long_drags, frames=4).json()["id"] for _ in range(20)]
        full = [wait_for(f"{server.url}/v1/jobs/{job_id}", finished) for job_id in ids]
        assert {job["status"] for job in full} == {"succeeded"}
        registry = server.app.state.registry
        jobs = [registry.get(job_id) for job_id in ids]
        assert all(job.slimmed for job in jobs)
        sizes = [deep_size(job) for job in jobs]
        assert max(sizes) < 8_000, sizes
        assert jobs[0].settings is None and set(jobs[0].result) == {
            "num_videos",
            "num_frames",
            "gif",
            "mp4",
            "requested",
        }
        # and the API still shows everything, from the record on disk
        again = requests.get(f"{server.url}/v1/jobs/{ids[0]}", timeout=10).json()
        assert again == full[0] and len(again["settings"]["drags"][0]) == 1000


# ------------------------------------------------------------------------------------------------
# the docs
# ------------------------------------------------------------------------------------------------


def test_the_docs_need_the_token_when_there_is_one(tmp_path: Path) -> None:
    with serve(tmp_path, StepEngine(), token="s3cret") as server:
        for path in ("/docs", "/redoc", "/openapi.json"):
            refused = requests.get(server.url + path, timeout=10)
            assert refused.status_code == 401, path
            allowed = requests.get(server.url + path, headers={"Authorization": "Bearer s3cret"}, timeout=10)
            assert allowed.status_code == 200, path
        schema = requests.get(f"{server.url}/openapi.json", headers={"Authorization": "Bearer s3cret"}).json()
        assert "/v1/jobs" in schema["paths"] and "/docs" not in schema["paths"]
        assert requests.get(f"{server.url}/v1/health", timeout=10).status_code == 200
    with serve(tmp_path, StepEngine()) as server:  # no token: the docs are open, as on any local service
        assert all(requests.get(server.url + path, timeout=10).ok for path in ("/docs", "/redoc", "/openapi.json"))
