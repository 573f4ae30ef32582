"""Bounds on what one client can take: a job's output size, the work of many submissions at once, and
connections held open by slow or idle clients (slowloris) — while ``/v1/health`` keeps answering.

Real uvicorn servers on 127.0.0.1 in this process, run with the same protocol and options as
``puppet-master serve`` (:func:`backend.service.server.uvicorn_options`); the slow clients are raw
sockets. The measurements at scale (600 slow connections, 40 concurrent maximum-size requests on a
server process) are the slow tests in ``test_service_crashes.py`` and ``benchmarks/reliability.py``.
"""

from __future__ import annotations

import base64
import io
import socket
import threading
import time
from pathlib import Path

import requests
from PIL import Image

from backend.service import images as images_module
from tests.test_service import StepEngine, finished, job_body, png_base64, serve, wait_for

HEALTH_BUDGET_S = 0.2


def big_png(side: int) -> str:
    """A compressible opaque square PNG of ``side`` pixels (a small body, a large image)."""
    image = Image.new("RGB", (side, side), (90, 120, 150))
    return png_base64(image)


def health_seconds(url: str) -> float:
    started = time.perf_counter()
    response = requests.get(f"{url}/v1/health", timeout=10)
    assert response.status_code == 200
    return time.perf_counter() - started


def read_response(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    sock.settimeout(timeout)
    started = time.monotonic()
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data, time.monotonic() - started


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes ``sock`` within ``seconds`` (after whatever it still sends)."""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        return False
    return True


# ------------------------------------------------------------------------------------------------
# one job's size
# ------------------------------------------------------------------------------------------------


def test_a_job_over_the_pixel_budget_is_refused_naming_the_limit(tmp_path: Path) -> None:
    engine = StepEngine()
    with serve(tmp_path, engine, max_job_pixels=2**22) as server:  # 4 Mi pixels of output
        image = big_png(512)  # 512 x 512 = 256 Ki pixels per frame: 16 frames fit, 32 do not
        refused = requests.post(f"{server.url}/v1/jobs", json=job_body(image=image, frames=32, crop_scale=None))
        assert refused.status_code == 413, refused.text
        problem = refused.json()["detail"][0]
        assert problem["field"] == "image"
        assert problem["message"] == (
            "this job would make 32 frames (frames x num_videos) of 512x512 pixels, 8 million pixels; the server's "
            "limit is 4 million (--max-job-pixels), so send a smaller image, fewer frames or fewer videos"
        )
        videos = requests.post(
            f"{server.url}/v1/jobs", json=job_body(image=image, frames=8, num_videos=3, crop_scale=None)
        )
        assert videos.status_code == 413 and "24 frames (frames x num_videos)" in videos.text
        accepted = requests.post(f"{server.url}/v1/jobs", json=job_body(image=image, frames=16, crop_scale=None))
        assert accepted.status_code == 202, accepted.text
        assert wait_for(server.url + accepted.json()["url"], finished)["status"] == "succeeded"
    assert engine.calls == 1


def test_the_default_limits_refuse_the_request_that_took_9_gb() -> None:
    """Issue 13: a 102 KB body (a 4096x4096 image, 32 frames, 4 videos) drove the server to 9.15 GB."""
    from backend.service.settings import ServiceSettings

    settings = ServiceSettings()
    assert settings.max_image_side == 2048 and 4096 > settings.max_image_side
    assert settings.max_job_pixels == 2048 * 2048 * 16 == 1024 * 1024 * 32 * 2 < 4096 * 4096 * 32 * 4


# ------------------------------------------------------------------------------------------------
# many submissions at once: health never waits behind them
# ------------------------------------------------------------------------------------------------


def test_health_and_other_routes_answer_at_once_while_60_submissions_wait_to_be_decoded(
    tmp_path: Path, monkeypatch
) -> None:
    """60 submissions at once, more than the 40 threads FastAPI's shared pool has: two are decoded (held
    here), the rest wait on the event loop, holding no thread, so health and reads answer at once."""
    release = threading.Event()
    decoding = []

    def held_open(*args):
        decoding.append(1)
        release.wait(30)
        return images_module.open_image(*args)

    monkeypatch.setattr("backend.service.routers.jobs.decode_image", _decode_with(held_open))
    answers: list[int] = []

    def post() -> None:
        answers.append(requests.post(f"{server.url}/v1/jobs", json=job_body(steps=1), timeout=60).status_code)

    with serve(tmp_path, StepEngine(), max_queue=100, decode_slots=2) as server:
        posts = [threading.Thread(target=post) for _ in range(60)]
        for thread in posts:
            thread.start()
        deadline = time.monotonic() + 10
        while len(decoding) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        assert len(decoding) == 2, "more images were decoded at once than there are slots"
        latencies = [health_seconds(server.url) for _ in range(20)]
        started = time.perf_counter()
        assert requests.get(f"{server.url}/v1/jobs", timeout=10).status_code == 200  # a plain-def route: the pool
        listing_s = time.perf_counter() - started
        release.set()
        for thread in posts:
            thread.join(60)
    assert max(latencies) < HEALTH_BUDGET_S, latencies
    assert listing_s < HEALTH_BUDGET_S
    assert answers.count(202) == 60, answers


def _decode_with(opener):
    """``decode_image`` calling ``opener`` (the held stand-in) instead of ``open_image``, as the route calls it."""

    def decode(data, max_side, needs_object, images_per_job=1, max_job_pixels=None):
        raw = images_module.decode_base64(data)
        return raw, opener(raw, max_side, needs_object, images_per_job, max_job_pixels)

    return decode


def test_a_submission_that_waits_too_long_for_a_decoding_slot_is_told_to_retry(tmp_path: Path, monkeypatch) -> None:
    release = threading.Event()

    def held_open(*args):
        release.wait(30)
        return images_module.open_image(*args)

    monkeypatch.setattr("backend.service.routers.jobs.decode_image", _decode_with(held_open))
    with serve(tmp_path, StepEngine(), decode_slots=1, intake_wait_s=0.5) as server:
        first = threading.Thread(target=lambda: requests.post(f"{server.url}/v1/jobs", json=job_body(), timeout=60))
        first.start()
        time.sleep(0.3)
        waited = requests.post(f"{server.url}/v1/jobs", json=job_body(), timeout=60)
        release.set()
        first.join(60)
    assert waited.status_code == 503 and waited.headers["Retry-After"] == "2"
    assert waited.json()["detail"][0]["message"] == "the server is busy decoding other images; retry in about 2 s"


def test_bodies_beyond_the_in_flight_budget_wait_their_turn(tmp_path: Path) -> None:
    """Three 1.5 MB bodies with room for two at once: all are accepted; the server never held all three."""
    image = base64.b64encode(_noise_png(700)).decode()
    with serve(tmp_path, StepEngine(), max_body_mb=2, max_bodies_mb=3.5, max_queue=10) as server:
        intake = server.app.state.intake
        peak = []
        watching = threading.Event()

        def watch() -> None:
            while not watching.is_set():
                peak.append(intake.body_bytes)
                time.sleep(0.001)

        watcher = threading.Thread(target=watch)
        watcher.start()
        results = []
        posts = [
            threading.Thread(
                target=lambda: results.append(
                    requests.post(
                        f"{server.url}/v1/jobs", json=job_body(image=image, crop_scale=None), timeout=60
                    ).status_code
                )
            )
            for _ in range(3)
        ]
        for post in posts:
            post.start()
        for post in posts:
            post.join(60)
        watching.set()
        watcher.join()
    assert results == [202, 202, 202]
    assert 0 < max(peak) <= 3.5 * 1024 * 1024


def _noise_png(side: int) -> bytes:
    import numpy as np

    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=0)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------------
# slow, idle and too many clients
# ------------------------------------------------------------------------------------------------

FAST_DEADLINES = {"head_timeout_s": 1.0, "body_timeout_s": 1.5, "send_timeout_s": 1.0, "keep_alive_s": 0.5}


def test_a_connection_that_sends_nothing_gets_408_and_is_closed(tmp_path: Path) -> None:
    with serve(tmp_path, StepEngine(), **FAST_DEADLINES) as server:
        with socket.create_connection((server.host, server.port)) as idle:
            data, seconds = read_response(idle, timeout=10)
    assert data.startswith(b"HTTP/1.1 408 Request Timeout") and b"did not arrive within 1 s" in data
    assert 0.9 < seconds < 3


def test_headers_sent_a_byte_at_a_time_are_cut_off_at_the_head_deadline(tmp_path: Path) -> None:
    request = b"GET /v1/health HTTP/1.1\r\nHost: x\r\n" + b"X-Padding: slowloris\r\n" * 40 + b"\r\n"
    with serve(tmp_path, StepEngine(), **FAST_DEADLINES) as server:
        with socket.create_connection((server.host, server.port)) as slow:
            started = time.monotonic()
            sent = 0
            try:
                for byte in request:
                    slow.send(bytes([byte]))
                    sent += 1
                    time.sleep(0.01)
            except (BrokenPipeError, ConnectionResetError):
                pass
            data, _ = read_response(slow, timeout=10)
            seconds = time.monotonic() - started
        assert health_seconds(server.url) < HEALTH_BUDGET_S
    assert sent < len(request), "the slow client got to send its whole request"
    assert data.startswith(b"HTTP/1.1 408") and seconds < 3


def test_a_kept_alive_connection_sending_its_next_request_slowly_is_cut_off_too(tmp_path: Path) -> None:
    with serve(tmp_path, StepEngine(), **FAST_DEADLINES) as server:
        with socket.create_connection((server.host, server.port)) as conn:
            conn.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            conn.settimeout(5)
            first = conn.recv(65536)
            assert first.startswith(b"HTTP/1.1 200")
            started = time.monotonic()
            try:
                for byte in b"GET /v1/health HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 30:
                    conn.send(bytes([byte]))
                    time.sleep(0.01)
            except (BrokenPipeError, ConnectionResetError):
                pass
            read_response(conn, timeout=5)
            assert time.monotonic() - started < 3


def test_a_body_that_stops_half_way_gets_408_and_the_server_moves_on(tmp_path: Path) -> None:
    with serve(tmp_path, StepEngine(), **FAST_DEADLINES) as server:
        with socket.create_connection((server.host, server.port)) as slow:
            slow.sendall(
                b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"
            )
            data, seconds = read_response(slow, timeout=10)
        assert data.startswith(b"HTTP/1.1 408") and b"request body did not arrive within 1.5 s" in data
        assert 1.3 < seconds < 4
        assert server.app.state.intake.body_bytes == 0  # its share of the body budget was given back
        accepted = requests.post(f"{server.url}/v1/jobs", json=job_body(), timeout=10)
        assert accepted.status_code == 202


def test_idle_and_slow_connections_give_way_to_new_ones_at_the_cap(tmp_path: Path) -> None:
    """Eight idle or slowloris connections fill a cap of eight: a new client is served at once, at their cost."""
    with serve(tmp_path, StepEngine(), max_connections=8, head_timeout_s=30) as server:
        slow = [socket.create_connection((server.host, server.port)) for _ in range(8)]
        try:
            for sock in slow[::2]:
                sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: 1")  # a head that never ends
            time.sleep(1.1)  # waiting a second for a head: they may give way
            latencies = [health_seconds(server.url) for _ in range(5)]
            assert max(latencies) < HEALTH_BUDGET_S
            # the health requests' connections close after each answer: one eviction made room for all of them
            assert closed_within(slow[0], 2.0) and not closed_within(slow[1], 0.3)
        finally:
            for sock in slow:
                sock.close()


def test_when_every_connection_is_busy_with_a_request_a_new_one_gets_503_with_retry_after(tmp_path: Path) -> None:
    with serve(tmp_path, StepEngine(), max_connections=8, **FAST_DEADLINES) as server:
        busy = [socket.create_connection((server.host, server.port)) for _ in range(8)]
        try:
            for sock in busy:  # bodies under way: these connections are not waiting for a head
                sock.sendall(
                    b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 100000\r\n\r\n{"
                )
            time.sleep(0.1)
            refused = requests.get(f"{server.url}/v1/health", timeout=5)
            assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
            assert "too many open connections" in refused.json()["detail"][0]["message"]
            time.sleep(1.7)  # their body deadline (1.5 s) passes: they are closed
            assert requests.get(f"{server.url}/v1/health", timeout=5).status_code == 200
        finally:
            for sock in busy:
                sock.close()


def test_a_client_that_stops_reading_a_download_is_dropped(tmp_path: Path) -> None:
    from backend.engines.preview import PreviewEngine

    with serve(tmp_path, PreviewEngine(), **FAST_DEADLINES) as server:
        image = base64.b64encode(_noise_png(600)).decode()
        job_id = requests.post(
            f"{server.url}/v1/jobs", json=job_body(image=image, frames=16, crop_scale=None), timeout=30
        ).json()["id"]
        wait_for(f"{server.url}/v1/jobs/{job_id}", finished, timeout=60)
        with socket.socket() as reader:
            reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            reader.connect((server.host, server.port))
            reader.sendall(f"GET /v1/jobs/{job_id}/frames.zip HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            time.sleep(3)  # reads nothing: the server's send buffer fills and its send deadline passes
            data, _ = read_response(reader, timeout=10)
        full = requests.get(f"{server.url}/v1/jobs/{job_id}/frames.zip", timeout=30).content
    assert data.startswith(b"HTTP/1.1 200") and len(data) < len(full)


# ------------------------------------------------------------------------------------------------
# a submission the server cannot take is refused from its headers
# ------------------------------------------------------------------------------------------------


def test_a_full_queue_answers_429_before_the_body_is_sent(tmp_path: Path) -> None:
    """Headers announcing a 30 MB body, and no body: the 429 comes anyway (the body is never read)."""
    with serve(tmp_path, StepEngine(step_s=0.05), max_queue=1, max_body_mb=32) as server:
        running = requests.post(f"{server.url}/v1/jobs", json=job_body(steps=100), timeout=10).json()
        wait_for(server.url + running["url"], lambda job: job["status"] == "running")
        assert requests.post(f"{server.url}/v1/jobs", json=job_body(steps=100), timeout=10).status_code == 202
        with socket.create_connection((server.host, server.port)) as client:
            client.sendall(
                b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 30000000\r\n\r\n{"
            )
            client.settimeout(5)
            answer = b""
            while b"queue is full" not in answer and (chunk := client.recv(65536)):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 429") and b"retry-after: " in answer.lower()
        assert b"the queue is full" in answer
        assert server.app.state.intake.body_bytes == 0  # no room was taken for the body


def test_submissions_being_received_hold_their_place_in_the_queue(tmp_path: Path, monkeypatch) -> None:
    """Five submissions at once for two places: two are received, three refused at once, none after parsing."""
    release = threading.Event()

    def held_open(*args):
        release.wait(30)
        return images_module.open_image(*args)

    monkeypatch.setattr("backend.service.routers.jobs.decode_image", _decode_with(held_open))
    answers: list[int] = []

    def post() -> None:
        answers.append(requests.post(f"{server.url}/v1/jobs", json=job_body(), timeout=60).status_code)

    with serve(tmp_path, StepEngine(), max_queue=2, decode_slots=2) as server:
        server.app.state.worker.loader.wait(10)
        posts = [threading.Thread(target=post) for _ in range(5)]
        for thread in posts:
            thread.start()
        deadline = time.monotonic() + 10
        while len(answers) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sorted(answers) == [429, 429, 429], answers  # refused while two are still being decoded
        release.set()
        for thread in posts:
            thread.join(30)
    assert sorted(answers) == [202, 202, 429, 429, 429]


def test_an_unauthenticated_submission_gets_401_even_when_the_queue_is_full(tmp_path: Path) -> None:
    with serve(tmp_path, StepEngine(step_s=0.05), max_queue=1, token="s3cret") as server:
        good = {"Authorization": "Bearer s3cret"}
        first = requests.post(f"{server.url}/v1/jobs", json=job_body(steps=100), headers=good, timeout=10).json()
        wait_for(server.url + first["url"], lambda job: job["status"] == "running", headers=good)
        requests.post(f"{server.url}/v1/jobs", json=job_body(steps=100), headers=good, timeout=10)
        assert requests.post(f"{server.url}/v1/jobs", json=job_body(), headers=good, timeout=10).status_code == 429
        anonymous = requests.post(f"{server.url}/v1/jobs", json=job_body(), timeout=10)
        assert anonymous.status_code == 401
