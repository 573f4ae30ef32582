"""A local HTTP server posing as the Hugging Face Hub, for tests of code that downloads with ``huggingface_hub``.

The unmodified client (``huggingface_hub`` 2.4.0) runs against it, so its real resolution, caching, redirect,
resume and error paths run. No network: two ``ThreadingHTTPServer``s on 127.0.0.1, one for the hub and one for
the "CDN" that LFS files are redirected to (another port is another origin, so the client treats it as the real
hub's CDN: it stops at the redirect to read the metadata and drops ``Authorization`` for the download).

Usage (import the fixture under its function name, so ruff sees no redefinition)::

    from tests.fake_hub import FakeHub, fake_hub_fixture  # noqa: F401 - the fake_hub fixture

    def test_fetch(fake_hub: FakeHub) -> None:
        fake_hub.add_repo("rayli/Puppet-Master", {"ckpts/model.safetensors": data}, repo_type="space",
                          card_data={"license": "cc-by-nc-sa-4.0"})
        fake_hub.gate("stabilityai/stable-video-diffusion-img2vid", accepted_tokens=("hf_accepted",))
        fake_hub.cut_after("model.safetensors", 4096)      # first GET: 4 KiB, then the connection drops
        ...                                                # the code under test, unchanged
        assert fake_hub.requests_to("model.safetensors", method="GET")[1].range == "bytes=4096-"

Repos are folders: ``root/{models|spaces|datasets}/{owner}/{name}/<files>`` (``add_repo`` writes one; files
written there directly count too, and edits between requests make a new commit). Card data is the YAML front
matter of the repo's ``README.md``, as on the hub. The commit is a stable fake sha (sha1 of the file listing);
``main`` and that sha are the only revisions. Files matching the usual LFS patterns (``*.safetensors``, ``*.bin``…)
are served as LFS: 302 to the CDN with ``X-Linked-Etag`` (sha256) and ``X-Linked-Size``. Nothing offers Xet (no
``X-Xet-*`` headers, no ``xetHash``), so the client downloads over plain HTTP. Gated repos (``gate``) answer file
requests as the hub does: 401 + ``X-Error-Code: GatedRepo`` without a token, 403 + ``GatedRepo`` with a token
that has not accepted the licence; info and tree listings stay public.

Pointing the client at it. ``huggingface_hub.constants`` reads the environment once, at import: ``ENDPOINT`` and
``HUGGINGFACE_CO_URL_TEMPLATE`` (file URLs), ``HF_HOME`` and every path under it, ``HF_HUB_CACHE``,
``HF_HUB_OFFLINE``, ``HF_HUB_DISABLE_TELEMETRY``…; and ``huggingface_hub.model_info``, ``list_repo_files`` & co.
are methods of an ``HfApi`` built at import with the endpoint of that moment. Setting ``HF_ENDPOINT`` during a
test is therefore too late for this process. ``use_fake_hub(monkeypatch, hub, hf_home)`` does both halves: it
sets the environment (for subprocesses, e.g. the ``puppet-master`` CLI, which import the client afresh) and patches
those attributes (for this process), with no token and telemetry off; monkeypatch undoes both. The ``fake_hub``
fixture starts a hub and calls it with a temporary ``HF_HOME`` (cache in ``HF_HOME/hub``).

Resuming, as 2.4.0 does it. Each download goes to a process-unique ``<etag>.<random>.incomplete`` that is deleted
when the call fails, so a *later* call starts again from byte 0. Resuming happens inside one call: when the body
stops short (``cut_after``), ``http_get`` waits 1 s and asks again with ``Range: bytes=<bytes on disk>-``. The
client writes in ``constants.DOWNLOAD_CHUNK_SIZE`` pieces (10 MiB) and loses the partial piece on a cut, so
``use_fake_hub`` sets 1 KiB pieces: with KB-sized test files the retry then carries a Range. (In a subprocess the
pieces stay 10 MiB: a cut KB-sized file is fetched again whole, without Range, and still arrives intact.)

Hub down (``hub.down = True``): every request answers 503 with ``Retry-After: 0``. ``HfApi`` calls fail at once
(``HfHubHTTPError``, status 503). ``hf_hub_download`` returns the cached file if there is one; otherwise it retries
its HEAD five times, 1 s apart (``Retry-After: 0`` makes that ~5 s instead of the client's 23 s backoff), and
raises ``LocalEntryNotFoundError``. ``snapshot_download`` falls back to the cached snapshot folder, and returns it
even when files are missing unless it has the repo's tree listing cached (a completed ``snapshot_download`` leaves
one; ``hf_hub_download`` alone does not); with no snapshot it raises ``LocalEntryNotFoundError``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest
import yaml
from huggingface_hub import constants, hf_api
from huggingface_hub.utils import _cache_manager as hub_cache_manager
from huggingface_hub.utils import close_session

# The hub's folder name for each repo type, as in its URLs (``/spaces/owner/name/resolve/…``, ``/api/spaces/…``).
REPO_TYPE_FOLDERS = {"model": "models", "space": "spaces", "dataset": "datasets"}
REPO_TYPE_OF_FOLDER = {folder: repo_type for repo_type, folder in REPO_TYPE_FOLDERS.items()}
# Files the hub's default .gitattributes stores with LFS (a subset: what model and Space repos hold).
LFS_PATTERNS = ("*.safetensors", "*.bin", "*.ckpt", "*.pt", "*.pth", "*.onnx", "*.msgpack", "*.h5", "*.npz", "*.zip")
LAST_MODIFIED = "2024-05-01T12:00:00.000Z"
# Chunk size set by use_fake_hub so that cut-off KB-sized downloads resume with a Range request (see module doc).
TEST_DOWNLOAD_CHUNK_SIZE = 1024
RANGE_PATTERN = re.compile(r"bytes=(\d*)-(\d*)")


def git_blob_id(data: bytes) -> str:
    """The git object id of a file's content: what the hub reports as a file's ``oid`` / ``blobId``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class HubFile:
    """One file of a repo, with the identifiers the hub derives from its content."""

    path: str
    data: bytes

    @cached_property
    def lfs_sha256(self) -> str | None:
        """The sha256 of an LFS file (the hub's ``X-Linked-Etag``), ``None`` for a file stored in git."""
        name = self.path.rsplit("/", 1)[-1]
        is_lfs = any(fnmatch.fnmatch(name, pattern) for pattern in LFS_PATTERNS)
        return hashlib.sha256(self.data).hexdigest() if is_lfs else None

    @cached_property
    def lfs_pointer(self) -> bytes | None:
        """The LFS pointer git stores in place of an LFS file."""
        if self.lfs_sha256 is None:
            return None
        pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.lfs_sha256}\nsize {len(self.data)}\n"
        return pointer.encode()

    @cached_property
    def blob_id(self) -> str:
        """The git blob id: of the content, or of the LFS pointer for an LFS file."""
        return git_blob_id(self.lfs_pointer if self.lfs_pointer is not None else self.data)

    def lfs_info(self, sha_key: str) -> dict[str, Any] | None:
        """LFS metadata as the hub's JSON spells it (``sha256`` in siblings, ``oid`` in tree entries)."""
        if self.lfs_pointer is None:
            return None
        return {sha_key: self.lfs_sha256, "size": len(self.data), "pointerSize": len(self.lfs_pointer)}


@dataclass(frozen=True)
class HubRepo:
    """A repo as read from its folder at the time of a request (edits between requests make a new commit)."""

    repo_type: str
    repo_id: str
    files: dict[str, HubFile]

    @classmethod
    def read(cls, repo_type: str, repo_id: str, folder: Path) -> HubRepo:
        paths = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        return cls(repo_type, repo_id, {path: HubFile(path, (folder / path).read_bytes()) for path in paths})

    @cached_property
    def commit(self) -> str:
        """A stable fake commit sha: the sha1 of the file listing (path and blob id of every file)."""
        listing = "".join(f"{path} {file.blob_id}\n" for path, file in sorted(self.files.items()))
        return hashlib.sha1(listing.encode()).hexdigest()

    def resolve(self, revision: str) -> str | None:
        """The commit a revision names: ``main`` or the commit itself; ``None`` for anything else."""
        return self.commit if revision in ("main", self.commit) else None

    @cached_property
    def card_data(self) -> dict[str, Any] | None:
        """The YAML front matter of README.md, which the hub serves as ``cardData``."""
        readme = self.files.get("README.md")
        match = re.match(r"---\n(.*?)\n---\n", readme.data.decode(), re.DOTALL) if readme else None
        return yaml.safe_load(match.group(1)) if match else None

    def folders(self) -> set[str]:
        """Every folder that holds a file, at any depth (``ckpts``, ``unet``, ``a/b``…)."""
        return {
            "/".join(parts[:depth]) for parts in (p.split("/") for p in self.files) for depth in range(1, len(parts))
        }


@dataclass
class HubRequest:
    """One request as the fake hub saw it. ``path`` is URL-decoded, without the query string."""

    server: str  # "hub" or "cdn"
    method: str
    path: str
    query: str
    range: str | None
    authorization: str | None
    status: int


@dataclass
class _Cut:
    path_suffix: str
    nbytes: int
    remaining: int


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Keep-alive connections of the client's shared session would otherwise make server_close() wait for them.
    block_on_close = False

    def __init__(self, hub: FakeHub, role: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hub = hub
        self.role = role

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class FakeHub:
    """The fake hub: repos under ``root``, served on ``hub.url`` (and LFS content on ``hub.cdn_url``).

    Use as a context manager or with ``start()`` / ``stop()``. Fault injection: ``cut_after`` (a body cut short,
    then the connection closed) and ``down`` (503 for everything). ``requests`` logs every request.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.requests: list[HubRequest] = []
        self.down = False
        self._gates: dict[tuple[str, str], frozenset[str]] = {}  # (repo type, repo id) -> accepted tokens
        self._cuts: list[_Cut] = []
        self._lock = threading.Lock()
        self._servers: list[_Server] = []

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> FakeHub:
        self._servers = [_Server(self, "hub"), _Server(self, "cdn")]
        for server in self._servers:
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers = []

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The endpoint to give the client (``HF_ENDPOINT``)."""
        return self._server("hub").url

    @property
    def cdn_url(self) -> str:
        """Where LFS files are redirected to."""
        return self._server("cdn").url

    def _server(self, role: str) -> _Server:
        if not self._servers:
            raise RuntimeError("the fake hub is not running: use it as a context manager or call start() first")
        return next(server for server in self._servers if server.role == role)

    # -- repos ---------------------------------------------------------------------------------------------------

    def repo_folder(self, repo_id: str, repo_type: str = "model") -> Path:
        if repo_type not in REPO_TYPE_FOLDERS:
            raise ValueError(f"repo_type {repo_type!r} is not one of {sorted(REPO_TYPE_FOLDERS)}")
        if repo_id.count("/") != 1:
            raise ValueError(f"repo_id {repo_id!r} must be 'owner/name' (the fake hub has no owner-less repos)")
        return self.root / REPO_TYPE_FOLDERS[repo_type] / repo_id

    def add_repo(
        self,
        repo_id: str,
        files: Mapping[str, bytes | str],
        repo_type: str = "model",
        card_data: Mapping[str, Any] | None = None,
    ) -> str:
        """Write a repo's files (paths relative to the repo, ``/``-separated); returns its commit sha.

        ``card_data`` becomes the YAML front matter of README.md (so ``info.card_data.license`` reads it back).
        """
        folder = self.repo_folder(repo_id, repo_type)
        contents = {path: data.encode() if isinstance(data, str) else data for path, data in files.items()}
        if card_data is not None:
            front_matter = yaml.safe_dump(dict(card_data), sort_keys=False)
            contents["README.md"] = f"---\n{front_matter}---\n".encode() + contents.get("README.md", b"")
        for path, data in contents.items():
            target = folder / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return self.commit(repo_id, repo_type)

    def commit(self, repo_id: str, repo_type: str = "model") -> str:
        """The sha that ``main`` resolves to now."""
        repo = self._read_repo(repo_type, repo_id)
        if repo is None:
            raise FileNotFoundError(f"no repo {repo_id!r} of type {repo_type!r} under {self.root}")
        return repo.commit

    def gate(self, repo_id: str, repo_type: str = "model", accepted_tokens: Iterable[str] = ()) -> None:
        """Gate a repo's files (manual approval): only ``Authorization: Bearer <accepted token>`` gets them."""
        self._gates[(repo_type, repo_id)] = frozenset(accepted_tokens)

    def _read_repo(self, repo_type: str, repo_id: str) -> HubRepo | None:
        folder = self.root / REPO_TYPE_FOLDERS[repo_type] / repo_id
        return HubRepo.read(repo_type, repo_id, folder) if folder.is_dir() else None

    # -- faults and the request log ------------------------------------------------------------------------------

    def cut_after(self, path_suffix: str, nbytes: int, times: int = 1) -> None:
        """Cut the body of the next ``times`` GETs whose path ends with ``path_suffix`` after ``nbytes`` bytes.

        The headers announce the full length; the connection is closed after ``nbytes``, as a dropped network
        connection would. Applies to the hub's own file responses and to the CDN's (LFS files).
        """
        with self._lock:
            self._cuts.append(_Cut(path_suffix, nbytes, times))

    def _take_cut(self, path: str) -> int | None:
        with self._lock:
            for cut in self._cuts:
                if cut.remaining > 0 and path.endswith(cut.path_suffix):
                    cut.remaining -= 1
                    return cut.nbytes
        return None

    def _log(self, request: HubRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def requests_to(self, path_suffix: str, method: str | None = None) -> list[HubRequest]:
        """Logged requests whose path ends with ``path_suffix`` (and of ``method``, when given)."""
        with self._lock:
            return [r for r in self.requests if r.path.endswith(path_suffix) and (method is None or r.method == method)]


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The inclusive byte span a single-range ``Range`` header asks of ``size`` bytes; ``None`` if unsatisfiable."""
    match = RANGE_PATTERN.fullmatch(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":  # a suffix: the last N bytes
        start, end = max(size - int(last), 0), size - 1
        return (start, end) if int(last) > 0 and size > 0 else None
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    return (start, end) if start <= end else None


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's pooled session expects
    timeout = 30

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Quiet: the request log is ``hub.requests``."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Called by send_response: record the request with the status it got."""
        url = urlsplit(self.path)
        self.server.hub._log(
            HubRequest(
                server=self.server.role,
                method=self.command,
                path=unquote(url.path),
                query=url.query,
                range=self.headers.get("Range"),
                authorization=self.headers.get("Authorization"),
                status=int(code),
            )
        )

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    # -- routing ---------------------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        hub = self.server.hub
        if hub.down:
            self._send(503, b"Service Unavailable (the fake hub is down)", {"Retry-After": "0"}, "text/plain")
            return
        url = urlsplit(self.path)
        # Split before decoding: a revision such as refs/pr/1 arrives as one %2F-encoded segment.
        parts = [unquote(part) for part in url.path.strip("/").split("/")]
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        if self.server.role == "cdn":
            self._serve_cdn(parts)
        elif parts[0] == "api" and len(parts) >= 4 and parts[1] in REPO_TYPE_FOLDERS.values():
            self._serve_api(parts[1], "/".join(parts[2:4]), parts[4:], query)
        elif len(parts) >= 5:
            self._serve_resolve(parts)
        else:
            self._send_json(404, {"error": f"the fake hub has no route for {url.path}"})

    def _repo_or_error(self, repo_type: str, repo_id: str, revision: str) -> tuple[HubRepo, str] | None:
        """The repo and the commit of ``revision``, or None after answering RepoNotFound / RevisionNotFound."""
        repo = self.server.hub._read_repo(repo_type, repo_id)
        if repo is None:
            # The hub answers 401 to anonymous requests for missing repos (it will not say whether private ones exist).
            status = 404 if self.headers.get("Authorization") else 401
            self._send_error(status, "RepoNotFound", "Repository not found")
            return None
        commit = repo.resolve(revision)
        if commit is None:
            self._send_error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return None
        return repo, commit

    def _serve_resolve(self, parts: list[str]) -> None:
        """``[/{spaces|datasets}]/{owner}/{name}/resolve/{revision}/{path}``: a file, or a redirect for LFS."""
        # Model URLs carry no type folder; a model owner named "spaces" or "datasets" is not supported.
        repo_type = REPO_TYPE_OF_FOLDER.get(parts[0], "model")
        if repo_type != "model":
            parts = parts[1:]
        if len(parts) < 5 or parts[2] != "resolve":
            self._send_json(404, {"error": f"the fake hub has no route for /{'/'.join(parts)}"})
            return
        found = self._repo_or_error(repo_type, "/".join(parts[:2]), parts[3])
        if found is None or not self._gate_allows(found[0]):
            return
        repo, commit = found
        file = repo.files.get("/".join(parts[4:]))
        if file is None:
            self._send_error(404, "EntryNotFound", "Entry not found", {"X-Repo-Commit": commit})
            return
        headers = {"X-Repo-Commit": commit, "ETag": f'"{file.blob_id}"'}
        if file.lfs_sha256 is None:
            self._send_file(file.data, headers)
            return
        cdn_path = f"/{REPO_TYPE_FOLDERS[repo_type]}/{repo.repo_id}/{file.lfs_sha256}/{quote(file.path)}"
        headers |= {
            "Location": self.server.hub.cdn_url + cdn_path,
            "X-Linked-Etag": f'"{file.lfs_sha256}"',
            "X-Linked-Size": str(len(file.data)),
        }
        self._send(302, b"", headers)

    def _gate_allows(self, repo: HubRepo) -> bool:
        """Whether the request may read the repo's files; answers 401/403 GatedRepo when it may not."""
        accepted_tokens = self.server.hub._gates.get((repo.repo_type, repo.repo_id))
        if accepted_tokens is None:
            return True
        authorization = self.headers.get("Authorization", "")
        token = authorization.removeprefix("Bearer ").strip() if authorization.startswith("Bearer ") else None
        if token in accepted_tokens:
            return True
        kind = repo.repo_type
        if token is None:
            self._send_error(
                401,
                "GatedRepo",
                f"Access to {kind} {repo.repo_id} is restricted. You must have access to it and be authenticated "
                "to access it. Please log in.",
            )
        else:
            self._send_error(
                403,
                "GatedRepo",
                f"Access to {kind} {repo.repo_id} is restricted and you are not in the authorized list. "
                f"Visit {self.server.hub.url}/{repo.repo_id} to ask for access.",
            )
        return False

    def _serve_cdn(self, parts: list[str]) -> None:
        """``/{type folder}/{owner}/{name}/{sha256}/{path}``: LFS content by hash, no authentication (a signed URL)."""
        repo_type = REPO_TYPE_OF_FOLDER.get(parts[0])
        repo = self.server.hub._read_repo(repo_type, "/".join(parts[1:3])) if repo_type and len(parts) >= 5 else None
        file = repo.files.get("/".join(parts[4:])) if repo else None
        if file is None or file.lfs_sha256 != parts[3]:
            self._send(404, b"NoSuchKey", content_type="text/plain")
            return
        self._send_file(file.data, {"ETag": f'"{file.lfs_sha256}"'})

    def _serve_api(self, type_folder: str, repo_id: str, rest: list[str], query: dict[str, str]) -> None:
        """``/api/{models|spaces|datasets}/{owner}/{name}[/revision/{rev}]`` and ``…/tree/{rev}[/{path}]``."""
        repo_type = REPO_TYPE_OF_FOLDER[type_folder]
        if rest and rest[0] == "tree" and len(rest) >= 2:
            found = self._repo_or_error(repo_type, repo_id, rest[1])
            if found is not None:
                self._send_tree(found[0], "/".join(rest[2:]), query.get("recursive") == "true")
        elif not rest or (rest[0] == "revision" and len(rest) == 2):
            found = self._repo_or_error(repo_type, repo_id, rest[1] if rest else "main")
            if found is not None:
                self._send_json(200, self._info(found[0], with_blobs=query.get("blobs") == "true"))
        else:
            self._send_json(404, {"error": f"the fake hub has no API route for {'/'.join(rest)}"})

    def _info(self, repo: HubRepo, with_blobs: bool) -> dict[str, Any]:
        """model_info / space_info JSON: what ModelInfo / SpaceInfo read."""
        siblings = []
        for file in repo.files.values():
            sibling: dict[str, Any] = {"rfilename": file.path}
            if with_blobs:
                sibling |= {"size": len(file.data), "blobId": file.blob_id}
                if (lfs := file.lfs_info("sha256")) is not None:
                    sibling["lfs"] = lfs
            siblings.append(sibling)
        info: dict[str, Any] = {
            "_id": repo.commit[:24],
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": repo.commit,
            "lastModified": LAST_MODIFIED,
            "createdAt": LAST_MODIFIED,
            "private": False,
            "gated": "manual" if (repo.repo_type, repo.repo_id) in self.server.hub._gates else False,
            "disabled": False,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
        }
        if repo.card_data is not None:
            info["cardData"] = repo.card_data
        if repo.repo_type == "model":
            info |= {"modelId": repo.repo_id, "downloads": 0}
        elif repo.repo_type == "space":
            info["sdk"] = (repo.card_data or {}).get("sdk", "gradio")
        return info

    def _send_tree(self, repo: HubRepo, folder: str, recursive: bool) -> None:
        """list_repo_tree JSON: the folder's files and sub-folders (all descendants when ``recursive``)."""
        folders = repo.folders()
        if folder and folder not in folders:
            self._send_error(404, "EntryNotFound", f"{folder} does not exist on this revision")
            return
        prefix = f"{folder}/" if folder else ""

        def listed(path: str) -> bool:
            return path.startswith(prefix) and (recursive or "/" not in path[len(prefix) :])

        entries: list[dict[str, Any]] = [
            {"type": "directory", "oid": git_blob_id(path.encode()), "size": 0, "path": path}
            for path in sorted(folders)
            if listed(path)
        ]
        for file in repo.files.values():
            if listed(file.path):
                entry = {"type": "file", "oid": file.blob_id, "size": len(file.data), "path": file.path}
                if (lfs := file.lfs_info("oid")) is not None:
                    entry["lfs"] = lfs
                entries.append(entry)
        self._send_json(200, entries)

    # -- responses -------------------------------------------------------------------------------------------

    def _send_file(self, data: bytes, headers: dict[str, str]) -> None:
        """File content with HTTP Range support (206 / 416), cut short when a ``cut_after`` matches."""
        headers = headers | {"Accept-Ranges": "bytes"}
        status, body = 200, data
        range_header = self.headers.get("Range")
        if range_header is not None:
            span = parse_range(range_header, len(data))
            if span is None:
                self._send(416, b"", headers | {"Content-Range": f"bytes */{len(data)}"})
                return
            start, end = span
            status, body = 206, data[start : end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        cut = self.server.hub._take_cut(unquote(urlsplit(self.path).path)) if self.command == "GET" else None
        if cut is None:
            self._send(status, body, headers)
            return
        self._send_headers(status, len(body), headers, "application/octet-stream")
        self.wfile.write(body[:cut])
        self.wfile.flush()
        self.close_connection = True  # the rest of the body never comes: the client sees the connection drop

    def _send_error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        """An error as the hub sends it: ``X-Error-Code`` / ``X-Error-Message`` headers and a JSON body."""
        self._send_json(
            status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message} | (headers or {})
        )

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), headers, "application/json")

    def _send(
        self,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
        content_type: str = "application/octet-stream",
    ) -> None:
        self._send_headers(status, len(body), headers or {}, content_type)
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_headers(self, status: int, length: int, headers: dict[str, str], content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()


def use_fake_hub(
    monkeypatch: pytest.MonkeyPatch, hub: FakeHub, hf_home: Path, chunk_size: int = TEST_DOWNLOAD_CHUNK_SIZE
) -> dict[str, str]:
    """Point ``huggingface_hub`` at ``hub``, with ``hf_home`` as HF_HOME (cache in ``hf_home/hub``), and no token.

    Sets the environment (for subprocesses started afterwards) and patches the client's import-time constants
    (for this process); see the module docstring for why both. Returns the environment variables it set.
    """
    hf_home = Path(hf_home)
    hub_cache = str(hf_home / "hub")
    environment = {
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(hf_home),
        "HF_HUB_CACHE": hub_cache,
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    # A token or an offline switch from the developer's environment must not leak into the tests.
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_OIDC_RESOURCE", "HF_HUB_OFFLINE",
                 "TRANSFORMERS_OFFLINE", "HUGGINGFACE_HUB_CACHE", "HF_ASSETS_CACHE", "HF_XET_CACHE"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    # Every path the client derived from HF_HOME at import (token, caches, the agent-registry and update-check
    # files…) moves under the new home, including ones a later release adds; the rest are named below.
    old_home = constants.HF_HOME
    for name, value in list(vars(constants).items()):
        if name.isupper() and isinstance(value, str) and (value + os.sep).startswith(old_home + os.sep):
            monkeypatch.setattr(constants, name, str(hf_home) + value[len(old_home) :])
    patched = {
        "ENDPOINT": hub.url,
        "HUGGINGFACE_CO_URL_TEMPLATE": hub.url + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HUB_CACHE": hub_cache,
        "HUGGINGFACE_HUB_CACHE": hub_cache,
        "HF_ASSETS_CACHE": str(hf_home / "assets"),
        "HF_XET_CACHE": str(hf_home / "xet"),
        "HF_TOKEN_PATH": str(hf_home / "token"),
        "HF_STORED_TOKENS_PATH": str(hf_home / "stored_tokens"),
        "HF_HUB_OFFLINE": False,
        # Otherwise the first request of the process fetches /api/agent-harnesses for the user agent.
        "HF_HUB_DISABLE_TELEMETRY": True,
        "DOWNLOAD_CHUNK_SIZE": chunk_size,
    }
    for name, value in patched.items():
        monkeypatch.setattr(constants, name, value)
    # Bound at import: huggingface_hub.model_info, list_repo_files… are methods of this HfApi instance.
    monkeypatch.setattr(hf_api.api, "endpoint", hub.url)
    # scan_cache_dir()'s default, imported by name.
    monkeypatch.setattr(hub_cache_manager, "HF_HUB_CACHE", hub_cache)
    return environment


@pytest.fixture(name="fake_hub")
def fake_hub_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """A running fake hub with repos under ``tmp_path/hub-repos``, the client pointed at it (HF_HOME in tmp)."""
    with FakeHub(tmp_path / "hub-repos") as hub:
        use_fake_hub(monkeypatch, hub, tmp_path / "hf-home")
        yield hub
        # Pooled keep-alive connections to this server must not be reused by a later test.
        close_session()
