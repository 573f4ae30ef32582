"""Latency, throughput and per-job overhead of the HTTP service, with the preview engine, on loopback.

The server runs in this process (uvicorn on a background thread, a random free port, a temporary
results folder). ``--clients`` threads share ``--jobs`` jobs; each client submits a job
(``POST /v1/jobs``), follows its server-sent events until it ends, and records:

- latency: from just before the POST to the arrival of the final event;
- the server's timings for the job: ``queued`` (waiting behind other jobs), ``engine`` (inside the
  engine's ``generate``) and ``write`` (PNG frames and the record).

The service's overhead per job is ``latency - queued - engine``: everything but the generation itself
and the wait for the single worker, i.e. the HTTP request, base64 + image decoding and validation,
queueing hand-offs, writing the results, and the notification that ends the event stream. The
target is <= 50 ms per job. Writing the results is reported on its own because it grows with the
number of pixels (PNG encoding, on the worker thread), while the rest is roughly constant.

Usage::

    python benchmarks/service.py --jobs 50 --clients 8 --size 512
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import logging
import platform
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import requests
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend.engines.preview import PreviewEngine  # noqa: E402
from backend.service import ServiceSettings, create_app  # noqa: E402
from backend.service.server import BackgroundServer  # noqa: E402

TARGET_OVERHEAD_MS = 50.0
DRAGS = [[[0.55, 0.5], [0.68, 0.42]], [[0.4, 0.6], [0.36, 0.7]]]


@dataclass
class Sample:
    """One job as a client saw it, and the server's timings for it (seconds)."""

    latency: float
    submit: float
    queued: float
    engine: float
    write: float

    @property
    def overhead(self) -> float:
        return self.latency - self.queued - self.engine


def render_like_image(size: int) -> str:
    """Base64 PNG of a textured object on a transparent background, like a render with film transparent."""
    rng = np.random.default_rng(0)
    pixels = np.zeros((size, size, 4), dtype=np.uint8)
    ys, xs = np.mgrid[0:size, 0:size]
    inside = (abs(xs - size / 2) < size / 4) & (abs(ys - size / 2) < size / 3)
    shade = (60 + 120 * xs / size + rng.normal(0, 12, (size, size))).clip(0, 255).astype(np.uint8)
    pixels[inside, 0] = shade[inside]
    pixels[inside, 1] = (shade[inside] * 0.8).astype(np.uint8)
    pixels[inside, 2] = 90
    pixels[inside, 3] = 255
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def run_job(session: requests.Session, base: str, body: dict) -> Sample:
    """Submit, follow the events to the end, and return the job's sample."""
    started = time.perf_counter()
    response = session.post(f"{base}/v1/jobs", json=body, timeout=60)
    submitted = time.perf_counter()
    response.raise_for_status()
    events_url = base + response.json()["events_url"]
    final = None
    with session.get(events_url, stream=True, timeout=300) as stream:
        for line in stream.iter_lines(decode_unicode=True):
            if line.startswith("data:"):
                job = json.loads(line[5:])
                if job["status"] in ("succeeded", "failed", "cancelled"):
                    final = job
                    break
    ended = time.perf_counter()
    if final is None or final["status"] != "succeeded":
        raise RuntimeError(f"job did not succeed: {final}")
    timings = final["timings"]
    return Sample(
        latency=ended - started,
        submit=submitted - started,
        queued=timings["queued"],
        engine=timings["engine"],
        write=timings["write"],
    )


def run_clients(base: str, body: dict, jobs: int, clients: int) -> tuple[list[Sample], float]:
    """``jobs`` jobs shared by ``clients`` threads; the samples and the wall time."""
    samples: list[Sample] = []
    errors: list[BaseException] = []
    remaining = iter(range(jobs))
    lock = threading.Lock()

    def client() -> None:
        with requests.Session() as session:
            while True:
                with lock:
                    if next(remaining, None) is None:
                        return
                try:
                    sample = run_job(session, base, body)
                except BaseException as error:  # noqa: BLE001 - reported after the run
                    errors.append(error)
                    return
                with lock:
                    samples.append(sample)

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} client(s) failed; first: {errors[0]!r}")
    return samples, wall


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def report(samples: list[Sample], wall: float, args: argparse.Namespace) -> str:
    rows = [
        ("latency (submit -> final event)", [s.latency for s in samples]),
        ("  queued behind other jobs", [s.queued for s in samples]),
        ("  engine (preview generate)", [s.engine for s in samples]),
        ("  service overhead", [s.overhead for s in samples]),
        ("    writing results (PNG frames, record)", [s.write for s in samples]),
        ("    the rest (HTTP, decode, hand-offs, events)", [s.overhead - s.write for s in samples]),
        ("      of which POST /v1/jobs", [s.submit for s in samples]),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [
        f"Service benchmark: {len(samples)} jobs, {args.clients} concurrent clients, preview engine, "
        f"{args.size}x{args.size} RGBA PNG, {args.frames} frames, {len(DRAGS)} drags; "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}",
        "",
        f"| {'':<{width}} | median ms | p95 ms |",
        f"|{'-' * (width + 2)}|----------:|-------:|",
    ]
    for name, values in rows:
        ms = [v * 1000 for v in values]
        lines.append(f"| {name:<{width}} | {statistics.median(ms):9.1f} | {percentile(ms, 95):6.1f} |")
    overhead = statistics.median(s.overhead for s in samples) * 1000
    fixed = statistics.median(s.overhead - s.write for s in samples) * 1000

    def verdict(value: float) -> str:
        return f"{'met' if value <= TARGET_OVERHEAD_MS else 'NOT met'} ({value:.1f} ms)"

    lines += [
        "",
        f"throughput: {len(samples) / wall:.2f} jobs/s ({wall:.2f} s wall); "
        f"median engine time alone bounds it at {1 / statistics.median(s.engine for s in samples):.2f} jobs/s",
        f"target, median service overhead <= {TARGET_OVERHEAD_MS:.0f} ms per job: "
        f"with writing the results {verdict(overhead)}; without {verdict(fixed)}",
    ]
    return "\n".join(lines)


def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING)
    body = {"image": render_like_image(args.size), "drags": DRAGS, "frames": args.frames, "seed": 0}
    with tempfile.TemporaryDirectory() as results:
        settings = ServiceSettings(results_dir=results, max_queue=max(args.jobs, 1))
        app = create_app(settings, engine=PreviewEngine(reason="benchmark"), engine_reason="benchmark")
        with BackgroundServer(app) as server:
            run_clients(server.url, body, min(args.clients, args.jobs), min(args.clients, args.jobs))  # warm-up
            samples, wall = run_clients(server.url, body, args.jobs, args.clients)
    print(report(samples, wall, args))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=50, help="jobs in the timed run")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--size", type=int, default=512, help="side of the square input image in pixels")
    parser.add_argument("--frames", type=int, default=14, help="frames per video")
    main(parser.parse_args())
