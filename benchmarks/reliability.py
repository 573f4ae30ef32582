"""Reliability of the HTTP service, measured on real ``puppet-master serve --engine preview`` processes.

Each scenario starts server processes on 127.0.0.1 (random ports, a temporary results folder) and
treats them as a crash, a hostile client or an unlucky machine would:

- ``kills``: ``kill -9`` at random moments, cycling through the stages a job goes through (queued,
  running, writing its files, being deleted), then a restart; every accepted job must be accounted
  for after each restart (finished, or run again), never 404. Target: 0 lost over >= 20 kills.
- ``fuzz``: random hostile requests (mutated and malformed bodies, odd paths, methods, ids, headers).
  Target: 0 answers >= 500 over >= 1,000 requests.
- ``load``: 40 clients submit the largest job the server accepts at once, while the server's RSS
  and ``/v1/health`` are sampled until the accepted jobs are done. Targets: RSS <= 2 GiB, health < 200 ms.
- ``slowloris``: 600 connections sending their headers a byte at a time: how long the server lets
  them hold a connection, and how health fares meanwhile.
- ``nofile``: a server with an open-file limit of 64 under 80 concurrent requests: no 4xx blaming the
  client, no server path in any answer, no traceback flood in the log.
- ``disk``: the results folder on a 24 MB tmpfs that fills up, then is remounted read-only (needs
  root: ``mount -t tmpfs``); every job stays consistent across a restart.

Usage::

    python benchmarks/reliability.py                      # every scenario (about 15 minutes on 2 cores)
    python benchmarks/reliability.py kills --kills 20
    python benchmarks/reliability.py fuzz --requests 1000
    python benchmarks/reliability.py load --clients 40
    python benchmarks/reliability.py slowloris nofile disk

It prints one table row per measurement (measured, target, pass/fail) and exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.service_processes import (  # noqa: E402
    TERMINAL,
    ServerProcess,
    job_body,
    job_states,
    object_png,
    post_job,
    wait_until_finished,
)

GIB = 1024**3
STAGES = ("queued", "running", "writing", "deleting")


@dataclass
class Row:
    """One line of the report."""

    scenario: str
    measure: str
    value: str
    target: str = ""
    ok: bool | None = None

    def cells(self) -> list[str]:
        verdict = "" if self.ok is None else ("pass" if self.ok else "FAIL")
        return [self.scenario, self.measure, self.value, self.target, verdict]


def print_table(rows: list[Row]) -> None:
    header = ["scenario", "measure", "measured", "target", ""]
    cells = [header] + [row.cells() for row in rows]
    widths = [max(len(line[column]) for line in cells) for column in range(len(header))]
    for index, line in enumerate(cells):
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))


def results_leftovers(results: Path) -> list[str]:
    """Entries of a settled results folder that are not complete job folders or the journal."""
    odd = []
    for path in results.iterdir():
        if path.name.startswith("jobs.sqlite3"):
            continue
        if not path.is_dir() or not (path / "record.json").is_file():
            odd.append(path.name)
        else:
            odd += [f"{path.name}/{item.name}" for item in path.rglob(".*")]
    return odd


def zip_is_whole(url: str, job: dict[str, Any]) -> bool:
    """The job's frames.zip has its record and every frame, each a readable PNG."""
    response = requests.get(f"{url}/v1/jobs/{job['id']}/frames.zip", timeout=60)
    if response.status_code != 200:
        return False
    result = job["result"]
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        names = archive.namelist()
        return len(names) == 1 + result["num_frames"] * len(result["videos"]) and archive.testzip() is None


# ------------------------------------------------------------------------------------------------
# kills
# ------------------------------------------------------------------------------------------------


def run_kills(kills: int, workdir: Path, seed: int = 0) -> list[Row]:
    """``kill -9`` at each stage in turn (random moments within it), restart, account for every job."""
    rng = random.Random(seed)
    server = ServerProcess(workdir / "kills" / "results", workdir / "kills" / "logs", "--max-queue", "6")
    small, large = object_png(256), object_png(768)
    accepted: set[str] = set()
    deleted: set[str] = set()  # DELETE answered 204
    deleting: set[str] = set()  # DELETE under way when the server was killed
    lost_during: list[str] = []
    stages = collections.Counter()
    for cycle in range(kills):
        server.start()
        states = job_states(server.url, sorted(accepted - deleted - deleting))
        lost_during += [job_id for job_id, state in states.items() if state.startswith("missing")]
        stage = STAGES[cycle % len(STAGES)]
        for index in range(rng.randint(2, 5)):
            # a large job first when the kill must find one running or writing (it stays in each phase long)
            big = (index == 0 and stage in ("running", "writing")) or rng.random() < 0.3
            body = job_body(large if big else small, frames=32 if big else 8, num_videos=2, seed=rng.randint(0, 99))
            response = post_job(server.url, body)
            if response.status_code == 202:
                accepted.add(response.json()["id"])
        victim, answers, deleter = None, [], None
        if stage == "queued":
            time.sleep(rng.uniform(0, 0.05))
        elif stage in ("running", "writing"):
            phases = {"running": ("encoding", "sampling", "decoding"), "writing": ("writing",)}[stage]
            _wait_for_phase(server.url, phases, timeout=30)
            time.sleep(rng.uniform(0, 0.05))
        else:
            states = job_states(server.url, sorted(accepted - deleted - deleting))
            finished = [job_id for job_id, state in states.items() if state in TERMINAL]
            if finished:
                victim = rng.choice(finished)
                deleter = threading.Thread(target=_delete, args=(server.url, victim, answers), daemon=True)
                deleter.start()
                time.sleep(rng.uniform(0, 0.01))
        stages[stage] += 1
        server.kill()
        if deleter is not None:
            deleter.join(30)
            (deleted if answers == [204] else deleting).add(victim)
    server.start()
    try:
        states = wait_until_finished(server.url, sorted(accepted - deleted - deleting), timeout=600)
        final = {job_id: requests.get(f"{server.url}/v1/jobs/{job_id}", timeout=10).json() for job_id in states}
        lost = [job_id for job_id, state in states.items() if state.startswith("missing")]
        broken = [
            job_id
            for job_id, job in final.items()
            if job["status"] == "succeeded" and not zip_is_whole(server.url, job)
        ]
        failed = collections.Counter(job["error"].split(";")[0] for job in final.values() if job["status"] == "failed")
        half_deleted = []
        for job_id in deleting:
            response = requests.get(f"{server.url}/v1/jobs/{job_id}", timeout=10)
            job = response.json() if response.status_code == 200 else None  # whole or gone, nothing between
            if job is not None and job["status"] == "succeeded" and not zip_is_whole(server.url, job):
                half_deleted.append(job_id)
        resurrected = [
            job_id for job_id in deleted if requests.get(f"{server.url}/v1/jobs/{job_id}").status_code != 404
        ]
        leftovers = results_leftovers(server.results_dir)
    finally:
        server.stop()
    statuses = collections.Counter(job["status"] for job in final.values())
    return [
        Row("kills", "kill -9 (by stage)", f"{kills} ({', '.join(f'{s} {stages[s]}' for s in STAGES)})", ">= 20"),
        Row("kills", "accepted jobs", str(len(accepted)), ""),
        Row("kills", "lost (404 after a restart)", str(len(lost) + len(lost_during)), "0",
            not lost and not lost_during),
        Row("kills", "final states", ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())), ""),
        Row("kills", "failed, why", "; ".join(f"{v} x {k}" for k, v in failed.items()) or "none", ""),
        Row("kills", "succeeded but incomplete", str(len(broken)), "0", not broken),
        Row("kills", "half-deleted / deleted came back", f"{len(half_deleted)} / {len(resurrected)}", "0 / 0",
            not half_deleted and not resurrected),
        Row("kills", "leftovers after settling", str(len(leftovers)), "0", not leftovers),
    ]  # fmt: skip


def _wait_for_phase(url: str, phases: tuple[str, ...], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = requests.get(f"{url}/v1/jobs", params={"limit": 50}, timeout=10).json()["jobs"]
        if any(job["status"] == "running" and job["phase"] in phases for job in jobs):
            return True
        time.sleep(0.005)
    return False


def _delete(url: str, job_id: str, answers: list[int]) -> None:
    """DELETE the job; its status (0 when the server died first) goes to ``answers``."""
    try:
        answers.append(requests.delete(f"{url}/v1/jobs/{job_id}", timeout=30).status_code)
    except requests.RequestException:
        answers.append(0)


# ------------------------------------------------------------------------------------------------
# fuzz
# ------------------------------------------------------------------------------------------------

_NASTY = [
    None, True, -1, 0, 2**63, -(2**70), 1e308, -1e-308, "", "x" * 10_000, "\u0000", "\ud7ff", [], {}, [[[]]],
    [[[0.5, 0.5]]], [[["0.5", 0.5], [0.6, 0.6]]], [[[0.5, 0.5], [0.6, 0.6]]] * 9, {"gif": "yes"}, "NaN", 3.5,
]  # fmt: skip
_RAW_BODIES = [
    b"", b"{", b"[]", b"null", b'{"image": NaN}', b'{"image": Infinity, "drags": [[[1e999, 0]]]}', b"\xff\xfe\x00",
    b"[" * 5000 + b"]" * 5000, b'{"frames": 1' + b"0" * 5000 + b"}", b'{"image": "' + b"A" * 100_000 + b'"}',
]  # fmt: skip


def _fuzz_request(rng: random.Random, url: str, valid: dict[str, Any], ids: list[str]) -> requests.Response:
    kind = rng.random()
    job_id = rng.choice(ids) if ids and rng.random() < 0.5 else rng.choice(["A" * 22, "nope", "..%2F..", "A" * 300])
    if kind < 0.1:  # a valid body with valid variations: these reach the engine
        body = valid | {"frames": rng.randint(2, 8), "seed": rng.randint(0, 2**32 - 1), "ease": "ease-in-out"}
        body["output"] = {"gif": rng.random() < 0.5, "overlay": True, "fps": rng.uniform(1, 60)}
        return requests.post(f"{url}/v1/jobs", json=body, timeout=30)
    if kind < 0.45:  # a valid body with fields replaced by nasty values
        body = dict(valid)
        for _ in range(rng.randint(1, 3)):
            field = rng.choice([*valid, "output", "unknown"])
            body[field] = rng.choice(_NASTY)
        if rng.random() < 0.2:
            body["image"] = rng.choice(
                [valid["image"][: rng.randint(0, 200)], "data:image/png;base64," + valid["image"]]
            )
        return requests.post(f"{url}/v1/jobs", json=body, timeout=30)
    if kind < 0.6:
        headers = {"Content-Type": rng.choice(["application/json", "text/plain", "application/x-www-form-urlencoded"])}
        return requests.post(f"{url}/v1/jobs", data=rng.choice(_RAW_BODIES), headers=headers, timeout=30)
    if kind < 0.85:
        path = rng.choice([
            f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/frames/{rng.choice([0, 3, -1, 99999, 'x'])}.png",
            f"/v1/jobs/{job_id}/frames.zip", f"/v1/jobs/{job_id}/video.gif?video={rng.choice([0, 9, -1, 'a'])}",
            f"/v1/jobs?limit={rng.choice([0, 1, 200, 201, 'x', -5])}", "/v1/health", "/docs", "/openapi.json",
            "/v1/jobs/" + "%00" * 10, "/" + "a/" * 200,
        ])  # fmt: skip
        method = rng.choice(["GET", "GET", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS", "POST"])
        headers = rng.choice([{}, {"Authorization": "Bearer " + "x" * 5000}, {"Range": "bytes=99999999-"}])
        return requests.request(method, url + path, headers=headers, timeout=30)
    # server-sent events of a job, abandoned at once
    with requests.get(f"{url}/v1/jobs/{job_id}/events", stream=True, timeout=30) as response:
        return response


def run_fuzz(count: int, workdir: Path, seed: int = 0) -> list[Row]:
    rng = random.Random(seed)
    valid = job_body(object_png(64), frames=4, steps=1)
    statuses: collections.Counter[int] = collections.Counter()
    server_errors: list[str] = []
    ids: list[str] = []
    touched: set[str] = set()
    with ServerProcess(workdir / "fuzz" / "results", workdir / "fuzz" / "logs", "--max-queue", "1000") as server:
        for _ in range(count):
            response = _fuzz_request(rng, server.url, valid, ids)
            statuses[response.status_code] += 1
            if response.status_code >= 500:
                server_errors.append(f"{response.request.method} {response.request.url[:80]} -> {response.status_code}")
            elif response.status_code == 202 and response.request.method == "POST":
                ids.append(response.json()["id"])
            if response.request.method == "DELETE":  # the fuzzer may cancel or delete its own jobs
                touched.update(job_id for job_id in ids if job_id in (response.request.url or ""))
        states = wait_until_finished(server.url, ids, timeout=300)
        failed = [job_id for job_id, state in states.items() if state != "succeeded" and job_id not in touched]
        tracebacks = server.log().count("Traceback")
    spread = ", ".join(f"{code} x {n}" for code, n in sorted(statuses.items()))
    return [
        Row("fuzz", "requests", str(count), ">= 1000"),
        Row("fuzz", "answers", spread, ""),
        Row("fuzz", "5xx", str(len(server_errors)), "0", not server_errors),
        Row(
            "fuzz",
            "accepted jobs (not deleted by the fuzzer) that did not succeed",
            f"{len(failed)} of {len(ids) - len(touched)}",
            "0",
            not failed,
        ),
        Row("fuzz", "tracebacks in the log", str(tracebacks), "0", tracebacks == 0),
    ]


# ------------------------------------------------------------------------------------------------
# load
# ------------------------------------------------------------------------------------------------


# Health is probed from a process of its own: a thread of this busy process (40 upload threads) would
# measure its own wait for the GIL, not the server.
_HEALTH_PROBE = """
import sys, time, requests
session = requests.Session()
while True:
    started = time.perf_counter()
    try:
        status = str(session.get(sys.argv[1] + "/v1/health", timeout=10).status_code)
    except requests.RequestException as error:
        status = type(error).__name__
    print(f"{(time.perf_counter() - started) * 1000:.2f} {status}", flush=True)
    time.sleep(0.05)
"""


class Sampler:
    """Samples a process's RSS (a thread) and ``/v1/health``'s latency (a child process) until stopped."""

    def __init__(self, pid: int, url: str) -> None:
        self.process = psutil.Process(pid)
        self.url = url
        self.rss: list[int] = []
        self.health_ms: list[float] = []
        self.health_failures: collections.Counter[str] = collections.Counter()
        self._stop = threading.Event()
        self._memory_thread = threading.Thread(target=self._memory)
        self._probe: subprocess.Popen | None = None
        self._reader = threading.Thread(target=self._read_probe)

    def __enter__(self) -> Sampler:
        self._probe = subprocess.Popen(
            [sys.executable, "-c", _HEALTH_PROBE, self.url], stdout=subprocess.PIPE, text=True
        )
        self._memory_thread.start()
        self._reader.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._memory_thread.join()
        if self._probe is not None:
            self._probe.terminate()
            self._probe.wait(10)
        self._reader.join()

    def _memory(self) -> None:
        while not self._stop.is_set():
            try:
                self.rss.append(self.process.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.02)

    def _read_probe(self) -> None:
        assert self._probe is not None and self._probe.stdout is not None
        for line in self._probe.stdout:
            milliseconds, status = line.split()
            if status == "200":
                self.health_ms.append(float(milliseconds))
            else:
                self.health_failures[status] += 1

    def summary(self) -> dict[str, float]:
        ordered = sorted(self.health_ms) or [0.0]
        return {
            "peak_rss": max(self.rss, default=0),
            "health_max_ms": ordered[-1],
            "health_p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
            "health_median_ms": statistics.median(ordered),
            "health_samples": len(self.health_ms),
        }


def maximum_size_body(side: int = 2048, frames: int = 16, videos: int = 1) -> dict[str, Any]:
    """The largest job the default settings accept: a side x side noise image (incompressible, so the body
    is large too), ``frames x videos x side^2`` at the 2^26-pixel budget."""
    return job_body(object_png(side, noise=True), frames=frames, num_videos=videos, steps=1, crop_scale=None)


def run_load(clients: int, workdir: Path, finish: int | None = None) -> list[Row]:
    body = maximum_size_body()
    payload = json.dumps(body).encode()
    statuses: collections.Counter[int] = collections.Counter()
    accepted: list[str] = []
    gate = threading.Barrier(clients)

    def client() -> None:
        gate.wait()
        try:
            response = requests.post(
                f"{server.url}/v1/jobs", data=payload, headers={"Content-Type": "application/json"}, timeout=300
            )
        except requests.RequestException:
            statuses[0] += 1
            return
        statuses[response.status_code] += 1
        if response.status_code == 202:
            accepted.append(response.json()["id"])

    server = ServerProcess(workdir / "load" / "results", workdir / "load" / "logs")
    with server:
        started = time.monotonic()
        with Sampler(server.process.pid, server.url) as sampler:
            threads = [threading.Thread(target=client) for _ in range(clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            intake_s = time.monotonic() - started
            wait_until_finished(server.url, accepted[:finish] if finish else accepted, timeout=1800)
        seconds = time.monotonic() - started
        states = collections.Counter(job_states(server.url, accepted).values())
    stats = sampler.summary()
    spread = ", ".join(f"{code} x {n}" for code, n in sorted(statuses.items()))
    failures = ", ".join(f"{k} x {v}" for k, v in sampler.health_failures.items()) or "none"
    return [
        Row("load", "concurrent maximum-size requests", f"{clients} x {len(payload) / 1e6:.1f} MB "
            f"({body['frames']} frames of 2048x2048)", "40"),
        Row("load", "answers", f"{spread} (all answered in {intake_s:.1f} s)", ""),
        Row("load", "jobs run to the end", f"{sum(states.values()) if not finish else finish} in {seconds:.0f} s "
            f"({', '.join(f'{k} {v}' for k, v in states.items())})", ""),
        Row("load", "server peak RSS", f"{stats['peak_rss'] / GIB:.2f} GiB", "<= 2 GiB", stats["peak_rss"] <= 2 * GIB),
        Row("load", "health latency max / p99 / median",
            f"{stats['health_max_ms']:.0f} / {stats['health_p99_ms']:.0f} / {stats['health_median_ms']:.0f} ms "
            f"({stats['health_samples']} samples)", "< 200 ms", stats["health_max_ms"] < 200),
        Row("load", "health not answered 200", failures, "none", not sampler.health_failures),
    ]  # fmt: skip


# ------------------------------------------------------------------------------------------------
# slowloris
# ------------------------------------------------------------------------------------------------


def run_slowloris(connections: int, workdir: Path) -> list[Row]:
    """``connections`` sockets each sending a never-ending request head a byte every 0.5 s."""
    with ServerProcess(workdir / "slow" / "results", workdir / "slow" / "logs") as server:
        head = b"GET /v1/health HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 10_000
        opened: list[tuple[socket.socket, float]] = []
        refused = 0
        for _ in range(connections):
            try:
                opened.append((socket.create_connection(("127.0.0.1", server.port), timeout=5), time.monotonic()))
            except OSError:
                refused += 1
        held: list[float] = []
        alive = dict(enumerate(opened))
        with Sampler(server.process.pid, server.url) as sampler:
            for position in range(len(head)):
                for key, (sock, opened_at) in list(alive.items()):
                    try:
                        sock.send(head[position : position + 1])
                    except OSError:
                        held.append(time.monotonic() - opened_at)
                        sock.close()
                        del alive[key]
                if not alive or position > 120:
                    break
                time.sleep(0.5)
        for sock, _opened_at in alive.values():
            held.append(float("inf"))
            sock.close()
    stats = sampler.summary()
    longest = max(held, default=0.0)
    answered = stats["health_samples"]
    asked = answered + sum(sampler.health_failures.values())
    return [
        Row("slowloris", "slow connections", f"{len(opened)} opened, {refused} refused at connect", "600"),
        Row("slowloris", "longest a slow connection was held", f"{longest:.1f} s", "<= 15 s", longest <= 15),
        Row("slowloris", "health answered 200 meanwhile", f"{answered} of {asked} "
            f"(others: {dict(sampler.health_failures) or 'none'})", ">= 90 %", answered >= 0.9 * asked),
        Row("slowloris", "health latency max (when answered)", f"{stats['health_max_ms']:.0f} ms", ""),
    ]  # fmt: skip


# ------------------------------------------------------------------------------------------------
# a low open-file limit
# ------------------------------------------------------------------------------------------------


def run_nofile(workdir: Path, limit: int = 64, requests_at_once: int = 80) -> list[Row]:
    image = object_png(128)
    server = ServerProcess(workdir / "nofile" / "results", workdir / "nofile" / "logs", "--max-queue", "50",
                           open_files=limit)  # fmt: skip
    answers: collections.Counter[str] = collections.Counter()
    leaks: list[str] = []
    blamed: list[str] = []
    with server:
        done = post_job(server.url, job_body(image, frames=8)).json()["id"]
        wait_until_finished(server.url, [done])

        def client(index: int) -> None:
            try:
                if index % 3 == 0:
                    response = requests.get(f"{server.url}/v1/jobs/{done}/frames/{index % 8}.png", timeout=60)
                elif index % 3 == 1:
                    response = requests.get(f"{server.url}/v1/jobs/{done}/frames.zip", timeout=60)
                else:
                    response = post_job(server.url, job_body(image, frames=4))
            except requests.RequestException as error:
                answers[type(error).__name__] += 1
                return
            answers[str(response.status_code)] += 1
            text = response.text if response.headers.get("content-type", "").startswith("application/json") else ""
            if str(server.results_dir) in text or ".venv" in text or "/usr/" in text:
                leaks.append(text[:200])
            if response.status_code in (400, 422):
                blamed.append(text[:200])
            if response.status_code == 503 and "Retry-After" not in response.headers:
                blamed.append("503 without Retry-After: " + text[:200])

        threads = [threading.Thread(target=client, args=(index,)) for index in range(requests_at_once)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        health = requests.get(f"{server.url}/v1/health", timeout=10).json()["status"]
    log = server.log()
    return [
        Row("nofile", "open-file limit, concurrent requests", f"{limit}, {requests_at_once}", ""),
        Row("nofile", "answers", ", ".join(f"{k} x {v}" for k, v in sorted(answers.items())), ""),
        Row("nofile", "4xx blaming the client / 503 without Retry-After", str(len(blamed)), "0", not blamed),
        Row("nofile", "server paths in answers", str(len(leaks)), "0", not leaks),
        Row("nofile", "log: bytes, tracebacks", f"{len(log)}, {log.count('Traceback')}", "< 20 kB, <= 3",
            len(log) < 20_000 and log.count("Traceback") <= 3),
        Row("nofile", "health afterwards", health, "ok", health == "ok"),
    ]  # fmt: skip


# ------------------------------------------------------------------------------------------------
# a disk that fills up, then turns read-only
# ------------------------------------------------------------------------------------------------


def mount_tmpfs(folder: Path, size_mb: int) -> bool:
    """Mount a tmpfs of ``size_mb`` at ``folder``; False where that is not allowed (not root)."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(folder)], capture_output=True)
    return done.returncode == 0


def remount(folder: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(folder)], check=True, capture_output=True)


def run_disk(workdir: Path, size_mb: int = 24) -> list[Row]:
    """A results folder that turns unwritable (``chattr +i``: root ignores permissions), fills up, and is
    remounted read-only between two runs; every job must come through a restart as it was."""
    disk = workdir / "disk" / "results"
    if not mount_tmpfs(disk, size_mb):
        return [Row("disk", "tmpfs", "cannot mount (not root?): skipped", "")]
    server = ServerProcess(disk, workdir / "disk" / "logs", "--max-queue", "2")
    answers: collections.Counter[str] = collections.Counter()
    try:
        with server:
            first = post_job(server.url, job_body(object_png(256), frames=8)).json()["id"]
            wait_until_finished(server.url, [first])
            ids = [first]

            _immutable(disk, True)  # unwritable: no new files, no renames (open files still take writes)
            unwritable = post_job(server.url, job_body(object_png(256), frames=8))
            if unwritable.status_code == 202:
                ids.append(unwritable.json()["id"])
                wait_until_finished(server.url, ids[-1:])
            locked = {
                "POST": unwritable.status_code,
                "job": requests.get(f"{server.url}/v1/jobs/{ids[-1]}").json()["error"] or "",
                "DELETE": requests.delete(f"{server.url}/v1/jobs/{first}").status_code,
                "zip": requests.get(f"{server.url}/v1/jobs/{first}/frames.zip").status_code,
            }
            _immutable(disk, False)

            image = object_png(512, noise=True)
            for _ in range(40):  # until the disk is full: jobs fail, or submissions are refused
                response = post_job(server.url, job_body(image, frames=16, num_videos=2, crop_scale=None))
                answers[f"POST {response.status_code}"] += 1
                if response.status_code == 202:
                    ids.append(response.json()["id"])
                    wait_until_finished(server.url, ids[-1:], timeout=120)
                elif response.status_code == 507:
                    break
            full_zip = requests.get(f"{server.url}/v1/jobs/{first}/frames.zip").status_code
            final = {job_id: requests.get(f"{server.url}/v1/jobs/{job_id}").json() for job_id in ids}
            succeeded = [job for job in final.values() if job["status"] == "succeeded"]
            whole = sum(zip_is_whole(server.url, job) for job in succeeded)
        outcomes = collections.Counter(
            job["status"] if job["status"] != "failed" else "failed: " + job["error"].split(";")[0]
            for job in final.values()
        )
        with server:  # a restart: every job as it was
            changed = [
                job_id for job_id, state in job_states(server.url, ids).items() if state != final[job_id]["status"]
            ]
        remount(disk, "ro")
        refused = subprocess.run(server.command(), capture_output=True, text=True, timeout=300, cwd=server.log_dir)
        remount(disk, "rw")
    finally:
        _immutable(disk, False)
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
    refusal = refused.stderr.strip().splitlines()
    return [
        Row("disk", "unwritable folder: POST; the job", f"{locked['POST']}; {locked['job'].split(';')[0]}", ""),
        Row("disk", "unwritable folder: DELETE, frames.zip", f"{locked['DELETE']}, {locked['zip']}", "503, 200",
            (locked["DELETE"], locked["zip"]) == (503, 200)),
        Row("disk", f"{size_mb} MB tmpfs filling up: submissions", ", ".join(f"{k} x {v}" for k, v in answers.items()),
            "ends in 507", "POST 507" in answers),
        Row("disk", "jobs", "; ".join(f"{v} x {k}" for k, v in outcomes.items()), ""),
        Row("disk", "succeeded and whole; frames.zip on the full disk", f"{whole} of {len(succeeded)}; {full_zip}",
            "all; 200", whole == len(succeeded) and full_zip == 200),
        Row("disk", "jobs changed by a restart", str(len(changed)), "0", not changed),
        Row("disk", "start on a read-only folder: status, stderr", f"{refused.returncode}, {refusal[-1:]}",
            "2, one line", refused.returncode == 2 and len(refusal) == 1),
    ]  # fmt: skip


def _immutable(folder: Path, on: bool) -> None:
    subprocess.run(["chattr", "-R", "+i" if on else "-i", str(folder)], capture_output=True)


# ------------------------------------------------------------------------------------------------


SCENARIOS = ("kills", "fuzz", "load", "slowloris", "nofile", "disk")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "scenarios", nargs="*", metavar="SCENARIO", help=f"any of {', '.join(SCENARIOS)} (default: all)"
    )
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--connections", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_intermixed_args(argv)
    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    runners = {
        "kills": lambda work: run_kills(args.kills, work, args.seed),
        "fuzz": lambda work: run_fuzz(args.requests, work, args.seed),
        "load": lambda work: run_load(args.clients, work),
        "slowloris": lambda work: run_slowloris(args.connections, work),
        "nofile": run_nofile,
        "disk": run_disk,
    }
    print(f"{platform.node()}: {psutil.cpu_count()} CPUs, {psutil.virtual_memory().total / GIB:.0f} GiB, "
          f"Python {platform.python_version()}", flush=True)  # fmt: skip
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="reliability-") as folder:
        for name in args.scenarios or SCENARIOS:
            started = time.monotonic()
            rows += runners[name](Path(folder))
            print(f"{name}: {time.monotonic() - started:.0f} s", flush=True)
    print_table(rows)
    return 0 if all(row.ok is not False for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
