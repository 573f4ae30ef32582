"""Run the add-on's real-window scenarios (tests/gui/scenarios.py) in Blender 4.3 under Xvfb.

Blender runs in a Debian 13 chroot (built once by ``setup_root.sh`` into the cache folder) with its
own event simulation (``--enable-event-simulate``): the scenarios move the mouse, press keys and
take screenshots (``import -window root``) like an artist at the keyboard. A real backend
(``puppet-master serve --engine preview``) runs outside the chroot on 127.0.0.1; the chroot shares
the network. Each scenario runs in a fresh Blender with a fresh user folder and writes a JSON
report of named checks; any failed check, crash or timeout makes the exit status non-zero.

Usage: ``scripts/test-gui [--scenario NAME ...] [--repeat N] [--out DIR]`` (see ``--help``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCENARIO_DIR = REPO / "tests" / "gui"
CACHE = Path(os.environ.get("PUPPET_GUI_CACHE", Path.home() / ".cache" / "puppet-master-gui"))
SCENARIOS = ("generate_undo", "drawing", "cancel", "backend_down", "pictures")
SCREEN = "1600x1000x24"
BLENDER_TIMEOUT_S = 300
GPU_TEXTURE_ERROR = "GPUTexture: Blender Texture Not Loaded!"

log = logging.getLogger("test-gui")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_root(root: Path) -> None:
    """Build the chroot once (minutes, ~1 GB); reused while its ``.ready`` mark exists."""
    if (root / ".ready").exists():
        return
    log.info("building the Blender 4.3 chroot in %s (once; a few minutes, ~1 GB)", root)
    subprocess.run([str(REPO / "scripts" / "gui" / "setup_root.sh"), str(root)], check=True)


@contextmanager
def mounted(root: Path) -> Iterator[None]:
    """/proc and /dev inside the chroot for the run; only what this call mounted is unmounted."""
    done = []
    try:
        for target, command in (("proc", ["mount", "-t", "proc", "proc"]), ("dev", ["mount", "--bind", "/dev"])):
            path = root / target
            if subprocess.run(["mountpoint", "-q", str(path)], check=False).returncode != 0:
                subprocess.run([*command, str(path)], check=True)
                done.append(path)
        yield
    finally:
        for path in reversed(done):
            subprocess.run(["umount", "-l", str(path)], check=False)


def build_zip(folder: Path) -> Path:
    """The extension zip, built by the project's own build script."""
    completed = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "build_extension.py"), "--output-dir", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"building the extension zip failed:\n{completed.stdout}{completed.stderr}")
    return Path(completed.stdout.strip().splitlines()[-1])


@contextmanager
def backend(results: Path, log_path: Path) -> Iterator[str]:
    """``puppet-master serve --engine preview`` on a free port of 127.0.0.1; its URL once healthy."""
    import requests

    port = free_port()
    command = [sys.executable, "-m", "backend.cli", "serve", "--engine", "preview", "--port", str(port)]
    command += ["--results-dir", str(results)]
    with open(log_path, "wb") as sink:
        process = subprocess.Popen(command, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise SystemExit(f"the backend exited ({process.returncode}); see {log_path}")
            try:
                if requests.get(url + "/v1/health", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the backend did not answer within 120 s; see {log_path}")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


@contextmanager
def xvfb(root: Path) -> Iterator[str]:
    """An X server inside the chroot on a free display; its DISPLAY value."""
    number = next(n for n in range(91, 200) if not (root / "tmp" / ".X11-unix" / f"X{n}").exists())
    process = subprocess.Popen(
        ["chroot", str(root), "Xvfb", f":{number}", "-screen", "0", SCREEN, "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not (root / "tmp" / ".X11-unix" / f"X{number}").exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"Xvfb :{number} did not start inside {root}")
            time.sleep(0.2)
        yield f":{number}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def run_scenario(root: Path, run_dir: Path, name: str, display: str, env: dict[str, str]) -> dict:
    """One scenario in a fresh Blender; its report, with ``crashed``/``timed_out``/``exit_code`` added."""
    inside = Path("/") / run_dir.relative_to(root)
    out = run_dir / name
    shutil.rmtree(out, ignore_errors=True)
    (out / "home").mkdir(parents=True)
    crash_log = root / "tmp" / "blender.crash.txt"
    crash_log.unlink(missing_ok=True)
    variables = {
        "HOME": str(inside / name / "home"),
        "BLENDER_USER_RESOURCES": str(inside / name / "home" / "blender"),
        "PATH": "/usr/bin:/bin",
        "DISPLAY": display,
        "LIBGL_ALWAYS_SOFTWARE": "1",
        "G_OUT": str(inside / name),
        "G_ZIP": str(inside / "puppet_master.zip"),
        **env,
    }
    command = ["chroot", str(root), "env", "-i", *(f"{key}={value}" for key, value in variables.items())]
    command += ["blender", "--factory-startup", "--enable-event-simulate", "--python", str(inside / "scenarios.py")]
    command += ["--", name]
    started = time.monotonic()
    with open(out / "blender.log", "wb") as sink:
        try:
            code = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT, timeout=BLENDER_TIMEOUT_S).returncode
            timed_out = False
        except subprocess.TimeoutExpired:
            code, timed_out = None, True
    report_path = out / "report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {"checks": {}}
    report.update(exit_code=code, timed_out=timed_out, seconds=round(time.monotonic() - started, 1))
    report["crashed"] = crash_log.exists() or (code is not None and code < 0) or code == 139
    if crash_log.exists():
        shutil.copy(crash_log, out / "blender.crash.txt")
    log_text = (out / "blender.log").read_text(errors="replace")
    if GPU_TEXTURE_ERROR in log_text:  # printed just before the crash of issue 10, item 0
        report["checks"]["no GPU texture of a freed image"] = {"ok": False, "detail": GPU_TEXTURE_ERROR}
    if not report.get("finished"):
        report["checks"]["scenario reached its end"] = {"ok": False, "detail": "see blender.log"}
    return report


def failures(report: dict) -> list[str]:
    found = [f"{name}: {check.get('detail', '')}" for name, check in report["checks"].items() if not check["ok"]]
    if report["crashed"]:
        found.append(f"Blender crashed (exit {report['exit_code']}); crash log: blender.crash.txt")
    if report["timed_out"]:
        found.append(f"Blender did not finish within {BLENDER_TIMEOUT_S} s")
    return found


def main(args: argparse.Namespace) -> int:
    root = CACHE / "root"
    ensure_root(root)
    run_dir = root / "pm-runs" / uuid.uuid4().hex[:8]
    run_dir.mkdir(parents=True)
    out = Path(args.out or CACHE / "runs" / time.strftime("%Y%m%d-%H%M%S")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(build_zip(Path(tempfile.mkdtemp(prefix="puppet-gui-dist-"))), run_dir / "puppet_master.zip")
    for script in SCENARIO_DIR.glob("*.py"):
        shutil.copy(script, run_dir / script.name)
    failed = 0
    with ExitStack() as stack:
        stack.enter_context(mounted(root))
        url = stack.enter_context(backend(run_dir / "results", out / "backend.log"))
        display = stack.enter_context(xvfb(root))
        for name in args.scenario or SCENARIOS:
            for attempt in range(1, args.repeat + 1):
                label = name if args.repeat == 1 else f"{name}#{attempt}"
                env = {"G_URL": url, "G_DEAD_URL": f"http://127.0.0.1:{free_port()}"}
                report = run_scenario(root, run_dir, name, display, env)
                shutil.copytree(run_dir / name, out / label, dirs_exist_ok=True, ignore=shutil.ignore_patterns("home"))
                problems = failures(report)
                failed += bool(problems)
                passed = sum(check["ok"] for check in report["checks"].values())
                print(
                    f"{'FAIL' if problems else 'ok  '} {label}: {passed}/{len(report['checks'])} checks, "
                    f"{report['seconds']} s"
                )
                for problem in problems:
                    print(f"       - {problem}")
    shutil.rmtree(run_dir, ignore_errors=True)
    print(f"screenshots and logs: {out}")
    return 1 if failed else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="run only these (repeatable)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each scenario (a flaky crash shows up)")
    parser.add_argument("--out", help="folder for reports, logs and screenshots (default: a new one in the cache)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop Xvfb and the backend, unmount
    sys.exit(main(parse_args()))
