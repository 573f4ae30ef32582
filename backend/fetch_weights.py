"""``puppet-master fetch-weights``: download the published weights and assemble a ready pipeline folder.

Two sources, each with its own licence, printed and recorded:

* the Puppet-Master UNet, published in the Hugging Face **Space** ``rayli/Puppet-Master`` as
  ``ckpts/model.safetensors`` (there is no model repo);
* the parts of Stable Video Diffusion img2vid the pipeline uses — VAE, CLIP image encoder, feature
  extractor, scheduler — from ``stabilityai/stable-video-diffusion-img2vid`` (gated: accept the
  licence on its page, then log in). SVD's own multi-GB UNet is never downloaded.

Downloads resume (``huggingface_hub`` keeps partial files) and show progress; the free disk space is
checked first. The pipeline folder is written to a staging folder, moved into place, and only then
given its ``fetch-record.json``: a folder without the record is incomplete and is never used. A second
run with the same request verifies the folder and does nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from .models.checkpoint import (
    DEFAULT_CHECKPOINT_FILENAME,
    PUBLISHED_UNET_FILENAME,
    PUBLISHED_UNET_REPO,
    PUBLISHED_UNET_REPO_TYPE,
)
from .paths import FETCH_RECORD, default_model_dir, puppet_master_home

logger = logging.getLogger(__name__)

UNET_REPO, UNET_REPO_TYPE, UNET_FILENAME = PUBLISHED_UNET_REPO, PUBLISHED_UNET_REPO_TYPE, PUBLISHED_UNET_FILENAME
SVD_REPO = "stabilityai/stable-video-diffusion-img2vid"
# the SVD components the pipeline uses: (subfolder, weights file stem or None for config-only parts)
SVD_COMPONENTS = (
    ("vae", "diffusion_pytorch_model"),
    ("image_encoder", "model"),
    ("feature_extractor", None),
    ("scheduler", None),
)
WEIGHT_DTYPES = ("fp16", "bf16", "fp32")
BYTES_PER_PARAMETER = {"fp16": 2, "bf16": 2, "fp32": 4}
PUBLISHED_UNET_PARAMETERS = 1_675_809_962  # shared/spec/checkpoint-keys.tsv
DISK_MARGIN = 1.05  # 5% for configs, file-system overhead and estimate error
RECORD_VERSION = 1


class FetchError(RuntimeError):
    """A fetch failed for a reason the user can act on; the message says what to do."""


@dataclass
class Source:
    """One thing to fetch: a hub repo (downloaded) or a local path (used as it is)."""

    what: str
    repo_id: str | None = None
    repo_type: str = "model"
    revision: str | None = None
    local_path: Path | None = None
    files: list[str] = field(default_factory=list)  # repo files to download (hub sources)
    commit: str | None = None
    download_bytes: int = 0  # bytes still to download
    total_bytes: int = 0  # bytes of all files
    license: str | None = None

    @property
    def page(self) -> str:
        from huggingface_hub import constants

        prefix = "spaces/" if self.repo_type == "space" else ""
        return f"{constants.ENDPOINT}/{prefix}{self.repo_id}"

    def describe(self) -> str:
        if self.local_path is not None:
            return f"{self.what}: {self.local_path} (local)"
        kind = " (Space)" if self.repo_type == "space" else ""
        return f"{self.what}: {self.repo_id}{kind} @ {(self.commit or self.revision or 'main')[:12]}"

    def record(self) -> dict[str, Any]:
        if self.local_path is not None:
            return {"local_path": str(self.local_path)}
        return {
            "repo_id": self.repo_id,
            "repo_type": self.repo_type,
            "revision": self.revision,
            "commit": self.commit,
            "files": self.files,
            "license": self.license,
            "page": self.page,
        }


# ------------------------------------------------------------------ errors a user can act on


@contextlib.contextmanager
def user_errors(source: Source | None = None, writing_to: Path | None = None) -> Iterator[None]:
    """Turn hub, network and disk failures into a :class:`FetchError` that says what to do."""
    from huggingface_hub import errors

    try:
        yield
    except FetchError:
        raise
    except errors.GatedRepoError as error:
        status = getattr(getattr(error, "response", None), "status_code", None)
        if status == 401 or not _have_token():
            raise FetchError(
                f"{source.repo_id} is gated and no Hugging Face token was sent: open {source.page}, log in and "
                "accept its licence, then run `hf auth login` (or set HF_TOKEN) and run this command again"
            ) from None
        raise FetchError(
            f"{source.repo_id} is gated and your Hugging Face account has not been granted access yet: open "
            f"{source.page}, accept its licence (approval can take a moment), then run this command again"
        ) from None
    except errors.RepositoryNotFoundError:
        hint = "" if _have_token() else " (if it is private or gated, run `hf auth login` or set HF_TOKEN)"
        raise FetchError(f"{source.repo_id} was not found on {_endpoint()}{hint}") from None
    except errors.RevisionNotFoundError:
        raise FetchError(f"{source.repo_id} has no revision {source.revision!r}: check --revision") from None
    except errors.RemoteEntryNotFoundError as error:
        raise FetchError(f"{source.repo_id} lacks a file the pipeline needs: {error}") from None
    except errors.OfflineModeIsEnabled:
        raise FetchError(
            "HF_HUB_OFFLINE is set, so nothing can be downloaded: unset it, or pass local files with --svd DIR "
            "and --unet FILE"
        ) from None
    except errors.HfHubHTTPError as error:
        status = getattr(getattr(error, "response", None), "status_code", "?")
        raise FetchError(
            f"the Hugging Face Hub answered {status} for {source.repo_id if source else 'a request'}: "
            "try again later (downloads resume where they stopped)"
        ) from None
    except (errors.LocalEntryNotFoundError, ConnectionError, TimeoutError) as error:
        raise FetchError(
            f"cannot reach the Hugging Face Hub at {_endpoint()} ({type(error).__name__}): check the network or "
            "proxy (HTTPS_PROXY) and run again — downloads resume; with the files at hand, pass --svd DIR and "
            "--unet FILE"
        ) from None
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            where = writing_to or puppet_master_home()
            raise FetchError(
                f"the disk filled up while writing under {where}: free some space (or choose --dest on another "
                "disk) and run again — finished downloads are kept"
            ) from None
        if error.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
            raise FetchError(f"cannot write {error.filename or writing_to}: {error.strerror}; choose --dest") from None
        if _is_network_error(error):
            raise FetchError(
                f"cannot reach the Hugging Face Hub at {_endpoint()}: check the network and run again"
            ) from None
        raise


def _is_network_error(error: BaseException) -> bool:
    try:
        import httpx2 as httpx
    except ImportError:  # pragma: no cover - huggingface_hub's HTTP client
        import httpx
    return isinstance(error, httpx.TransportError)


def _have_token() -> bool:
    from huggingface_hub import get_token

    return get_token() is not None


def _endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


# ------------------------------------------------------------------ planning


def svd_patterns(available: list[str], dtype: str) -> list[str]:
    """The SVD files to download: each component's configs and one weights file — the fp16 variant for a
    half-precision pipeline when the repo has it, else the full-precision file."""
    wanted: list[str] = []
    for folder, stem in SVD_COMPONENTS:
        in_folder = [name for name in available if name.startswith(f"{folder}/")]
        if not in_folder:
            raise FetchError(f"the SVD repo has no {folder}/ folder: is it an img2vid pipeline repo?")
        wanted += [name for name in in_folder if name.endswith((".json", ".txt"))]
        if stem is None:
            continue
        candidates = [f"{folder}/{stem}.fp16.safetensors"] if dtype != "fp32" else []
        candidates.append(f"{folder}/{stem}.safetensors")
        chosen = next((name for name in candidates if name in available), None)
        if chosen is None:
            raise FetchError(f"the SVD repo has no {folder} weights ({' or '.join(candidates)})")
        wanted.append(chosen)
    return sorted(set(wanted))


def plan_hub_source(source: Source, patterns: list[str] | None, dtype: str) -> None:
    """Fill in a hub source's commit, licence, files and sizes (nothing is downloaded)."""
    from huggingface_hub import HfApi, hf_hub_download

    api = HfApi()
    with user_errors(source):
        if source.repo_type == "space":
            info = api.space_info(source.repo_id, revision=source.revision, files_metadata=True)
        else:
            info = api.model_info(source.repo_id, revision=source.revision, files_metadata=True)
        source.commit = info.sha
        card = info.card_data
        source.license = (card.get("license_name") or card.get("license")) if card else None
        available = [sibling.rfilename for sibling in info.siblings or []]
        files = patterns if patterns is not None else svd_patterns(available, dtype)
        missing = [name for name in files if not any(fnmatch(a, name) for a in available)]
        if missing:
            raise FetchError(f"{source.repo_id} has no {', '.join(missing)}: check the repo and --revision")
        source.files = files
        for name in files:
            plan = hf_hub_download(
                source.repo_id, name, repo_type=source.repo_type, revision=source.commit,
                local_dir=download_dir(source), dry_run=True,
            )  # fmt: skip
            source.total_bytes += plan.file_size or 0
            source.download_bytes += (plan.file_size or 0) if plan.will_download else 0


def download_dir(source: Source) -> Path:
    """Where a hub source's files are downloaded (resumable; removed after assembly unless kept)."""
    return puppet_master_home() / "downloads" / source.repo_type / source.repo_id.replace("/", "--")


def check_free_space(sources: list[Source], dest: Path, output_bytes: int) -> None:
    """FetchError unless the downloads and the assembled folder fit on their disks."""
    needs: dict[int, tuple[Path, int]] = {}

    def need(path: Path, amount: int) -> None:
        existing = path
        while not existing.exists():
            existing = existing.parent
        device = existing.stat().st_dev
        where, total = needs.get(device, (existing, 0))
        needs[device] = (where, total + amount)

    for source in sources:
        if source.repo_id is not None:
            need(download_dir(source), source.download_bytes)
    need(dest, output_bytes)
    for where, amount in needs.values():
        free = shutil.disk_usage(where).free
        if amount * DISK_MARGIN > free:
            raise FetchError(
                f"not enough disk space: {_gb(amount * DISK_MARGIN)} needed under {where}, {_gb(free)} free; free "
                "some space or choose --dest on another disk"
            )


def _gb(amount: float) -> str:
    return f"{amount / 1e9:.1f} GB"


# ------------------------------------------------------------------ downloading and assembling


def download(source: Source) -> Path:
    """Download a hub source's planned files (resuming partial ones) into :func:`download_dir`."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import enable_progress_bars

    enable_progress_bars()  # a multi-GB download must not look hung
    target = download_dir(source)
    with user_errors(source, writing_to=target):
        for name in source.files:
            hf_hub_download(source.repo_id, name, repo_type=source.repo_type, revision=source.commit, local_dir=target)
    return target


def assemble(
    svd_dir: Path | str, unet_file: Path, dest: Path, dtype: str, unet_config: dict[str, Any] | None
) -> list[str]:
    """Build the pipeline from SVD's components and the Puppet-Master UNet, save it into ``dest`` (through a
    staging folder beside it), and return the saved files relative to ``dest``."""
    import torch

    from .devices import DTYPES
    from .models import UNetDragSpatioTemporalModel
    from .pipeline.pipeline import PuppetMasterPipeline

    torch_dtype = DTYPES[dtype]
    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    with user_errors(writing_to=dest.parent):
        dest.parent.mkdir(parents=True, exist_ok=True)
        local = os.path.isdir(svd_dir)
        variant = "fp16" if dtype != "fp32" and _has_fp16_variant(Path(svd_dir)) else None
        components = PuppetMasterPipeline.load_svd_components(
            svd_dir, torch_dtype, variant=variant, local_files_only=local
        )
        unet = UNetDragSpatioTemporalModel.from_puppet_master_checkpoint(
            unet_file, torch_dtype=torch_dtype, **(unet_config or {})
        )
        pipeline = PuppetMasterPipeline(unet=unet, **components)
        with torch.no_grad():
            pipeline.save_pretrained(staging, safe_serialization=True)
        del pipeline, unet, components
        _fsync_tree(staging)
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    return sorted(str(path.relative_to(dest).as_posix()) for path in dest.rglob("*") if path.is_file())


def _has_fp16_variant(svd_dir: Path) -> bool:
    return (svd_dir / "vae" / "diffusion_pytorch_model.fp16.safetensors").is_file()


def _fsync_tree(folder: Path) -> None:
    """Flush every file of ``folder`` to disk before it is moved into place and recorded."""
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def write_record(dest: Path, record: dict[str, Any]) -> None:
    """Write ``fetch-record.json`` atomically; written last, it marks the folder complete."""
    temporary = dest / (FETCH_RECORD + ".tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(dest / FETCH_RECORD)


def verify(dest: Path, request: dict[str, Any]) -> str | None:
    """None when ``dest`` holds a complete fetch of ``request``; else why it must be (re)assembled."""
    record_path = dest / FETCH_RECORD
    if not record_path.is_file():
        return "no complete pipeline there yet" if not dest.exists() else "the folder is incomplete"
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "its fetch record is unreadable"
    if record.get("request") != request:
        return "it was fetched with other settings"
    for name, size in record.get("files", {}).items():
        path = dest / name
        if not path.is_file() or path.stat().st_size != size:
            return f"{name} is missing or changed"
    return None


# ------------------------------------------------------------------ the command


def fetch_weights(
    dest: Path | None = None,
    dtype: str = "fp16",
    revision: str | None = None,
    svd: str | None = None,
    svd_revision: str | None = None,
    unet: str | None = None,
    unet_config: dict[str, Any] | None = None,
    keep_downloads: bool = False,
    force: bool = False,
    echo: Any = print,
) -> Path:
    """Fetch and assemble the pipeline folder; its path. See the module docstring."""
    if dtype not in WEIGHT_DTYPES:
        raise FetchError(f"--dtype must be one of {', '.join(WEIGHT_DTYPES)}, got {dtype!r}")
    dest = Path(dest).expanduser().resolve() if dest else default_model_dir()
    unet_source = _unet_source(unet, revision)
    svd_source = _svd_source(svd, svd_revision)
    request = {
        "version": RECORD_VERSION,
        "dtype": dtype,
        "unet": unet_source.record() if unet_source.local_path else [UNET_REPO, revision],
        "svd": svd_source.record() if svd_source.local_path else [svd_source.repo_id, svd_revision],
        "unet_config": unet_config or {},
    }
    request = json.loads(json.dumps(request))  # as the record will read it back (tuples become lists)
    why = verify(dest, request)
    if why is None and not force:
        echo(f"Puppet-Master weights are ready in {dest} (verified; nothing to do)")
        return dest
    echo(f"assembling the Puppet-Master pipeline in {dest}: {why or 'asked to with --force'}")

    # 1. plan: what each source holds, its licence, and what is left to download
    hub_sources = [source for source in (unet_source, svd_source) if source.local_path is None]
    for source in hub_sources:
        plan_hub_source(source, [UNET_FILENAME] if source is unet_source else None, dtype)
    for source in (unet_source, svd_source):
        licence = f"; licence: {source.license}" if source.license else ""
        echo(f"  {source.describe()}{licence}")
    if any(source is unet_source and source.license for source in hub_sources):
        echo(f"  the Puppet-Master weights are published under {unet_source.license}: respect its terms")
    if unet_config:  # a non-published config: bound the saved UNet by its file stored at 2x the precision
        unet_output_bytes = (unet_source.total_bytes or _local_size(unet_source.local_path)) * 2
    else:
        unet_output_bytes = PUBLISHED_UNET_PARAMETERS * BYTES_PER_PARAMETER[dtype]
    check_free_space(hub_sources, dest, unet_output_bytes + svd_source.total_bytes)
    to_download = sum(source.download_bytes for source in hub_sources)
    if to_download:
        echo(f"  downloading {_gb(to_download)} (resumes if interrupted)")

    # 2. download, 3. assemble, 4. record (last: marks the folder complete)
    started = time.monotonic()
    svd_path = download(svd_source) if svd_source.local_path is None else svd_source.local_path
    if unet_source.local_path is None:
        unet_path = download(unet_source) / UNET_FILENAME
    else:
        unet_path = unet_source.local_path
    echo(f"  assembling the pipeline ({dtype})")
    files = assemble(svd_path, unet_path, dest, dtype, unet_config)
    write_record(
        dest,
        {
            "request": request,
            "sources": {"unet": unet_source.record(), "svd": svd_source.record()},
            "dtype": dtype,
            "files": {name: (dest / name).stat().st_size for name in files},
            "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "seconds": round(time.monotonic() - started, 1),
        },
    )
    if not keep_downloads:
        for source in hub_sources:
            shutil.rmtree(download_dir(source), ignore_errors=True)
    echo(f"Puppet-Master weights are ready in {dest}; `puppet-master serve` and `generate` now find them")
    return dest


def _unet_source(unet: str | None, revision: str | None) -> Source:
    if unet is None:
        return Source("Puppet-Master UNet", UNET_REPO, UNET_REPO_TYPE, revision)
    path = Path(unet).expanduser()
    if path.is_dir():
        path = path / DEFAULT_CHECKPOINT_FILENAME
    if not path.is_file():
        raise FetchError(
            f"--unet {unet!r}: no such weights file (give the .safetensors file of the Puppet-Master UNet)"
        )
    return Source("Puppet-Master UNet", local_path=path.resolve())


def _svd_source(svd: str | None, revision: str | None) -> Source:
    if svd is None:
        return Source("SVD components", SVD_REPO, "model", revision)
    path = Path(svd).expanduser()
    if path.is_dir():
        if not (path / "vae").is_dir() or not (path / "image_encoder").is_dir():
            raise FetchError(f"--svd {svd!r} is not an SVD img2vid folder (it needs vae/ and image_encoder/)")
        return Source("SVD components", local_path=path.resolve())
    if svd.count("/") != 1 or svd.startswith((".", "/", "~")):
        raise FetchError(f"--svd {svd!r} is neither an SVD folder nor a hub repo id (owner/name)")
    return Source("SVD components", svd, "model", revision)


def _local_size(path: Path | None) -> int:
    return path.stat().st_size if path is not None else 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fetch-weights",
        help="download the published weights into a ready pipeline folder",
        description="Download the published weights and assemble a ready pipeline folder "
        f"(default {default_model_dir()}; PUPPET_MASTER_HOME moves it).",
    )
    parser.add_argument("--dest", help=f"pipeline folder to create (default {default_model_dir()})")
    parser.add_argument(
        "--dtype", choices=WEIGHT_DTYPES, default="fp16",
        help="precision the weights are stored in (default fp16: half the disk; GPUs run fp16/bf16 anyway)",
    )  # fmt: skip
    parser.add_argument("--revision", help=f"revision (branch or commit) of the {UNET_REPO} Space to pin")
    parser.add_argument("--svd", help=f"SVD img2vid folder you already have, or another hub id (default {SVD_REPO})")
    parser.add_argument("--svd-revision", help="revision of the SVD repo to pin")
    parser.add_argument("--unet", help="Puppet-Master UNet .safetensors file you already have (skips its download)")
    parser.add_argument("--keep-downloads", action="store_true", help="keep the downloaded files after assembly")
    parser.add_argument("--force", action="store_true", help="assemble again even if the folder verifies")
    # tests: a UNet config override (JSON) for tiny checkpoints
    parser.add_argument("--unet-config", help=argparse.SUPPRESS)
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    unet_config = json.loads(Path(args.unet_config).read_text()) if args.unet_config else None
    try:
        fetch_weights(
            dest=Path(args.dest) if args.dest else None, dtype=args.dtype, revision=args.revision, svd=args.svd,
            svd_revision=args.svd_revision, unet=args.unet, unet_config=unet_config,
            keep_downloads=args.keep_downloads, force=args.force,
        )  # fmt: skip
    except FetchError as error:
        print(f"puppet-master fetch-weights: {error}", file=sys.stderr)
        return 2
    return 0
