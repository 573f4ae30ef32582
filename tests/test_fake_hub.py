"""The fake hub (tests/fake_hub.py) against the real, unmodified huggingface_hub client.

Each test gets a fresh hub on 127.0.0.1 and an empty HF_HOME (the ``fake_hub`` fixture), so everything a test
asserts about the cache or the request log comes from that test's own calls.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from huggingface_hub import HfApi, constants, hf_hub_download, list_repo_files, model_info, snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from tests.fake_hub import TEST_DOWNLOAD_CHUNK_SIZE, FakeHub, fake_hub_fixture  # noqa: F401 - the fake_hub fixture

MODEL = "owner/tiny-model"
SPACE = "rayli/Puppet-Master"
GATED = "stabilityai/stable-video-diffusion-img2vid"
ACCEPTED_TOKEN = "hf_accepted"
CONFIG = b'{"in_channels": 8}'


def weights(size: int, seed: int = 0) -> bytes:
    """Deterministic, non-repeating bytes: a resumed download stitched at the wrong offset would not match."""
    blocks = (hashlib.sha256(b"%d-%d" % (seed, i)).digest() for i in range(size // 32 + 1))
    return b"".join(blocks)[:size]


def read(path: str) -> bytes:
    return Path(path).read_bytes()


def test_model_file_by_branch_default_and_commit(fake_hub: FakeHub) -> None:
    """A git-stored file is served by /resolve with its commit; the file lands in the temporary HF cache."""
    commit = fake_hub.add_repo(MODEL, {"config.json": CONFIG})

    for revision in (None, "main", commit):
        path = hf_hub_download(MODEL, "config.json", revision=revision)
        assert read(path) == CONFIG
        assert Path(path).is_relative_to(constants.HF_HUB_CACHE)
        assert Path(path).parent.name == commit  # snapshots/<X-Repo-Commit>/config.json

    assert Path(constants.HF_HUB_CACHE, "models--owner--tiny-model", "refs", "main").read_text() == commit
    # the commit revision is served from the cache without asking: 2 HEADs (None, main) and 1 GET in all
    assert [(r.method, r.path) for r in fake_hub.requests] == [
        ("HEAD", f"/{MODEL}/resolve/main/config.json"),
        ("GET", f"/{MODEL}/resolve/main/config.json"),
        ("HEAD", f"/{MODEL}/resolve/main/config.json"),
    ]


def test_lfs_file_comes_from_the_cdn_without_the_token(fake_hub: FakeHub) -> None:
    """LFS files redirect to another origin; the client reads size/etag from the 302 and drops Authorization."""
    data = weights(3000)
    fake_hub.add_repo(MODEL, {"model.safetensors": data})

    path = hf_hub_download(MODEL, "model.safetensors", token="hf_anyone")

    assert read(path) == data
    assert Path(path).resolve().name == hashlib.sha256(data).hexdigest()  # blobs/<X-Linked-Etag>
    head, get = fake_hub.requests
    assert (head.server, head.method, head.status, head.authorization) == ("hub", "HEAD", 302, "Bearer hf_anyone")
    assert (get.server, get.method, get.status, get.authorization) == ("cdn", "GET", 200, None)


def test_space_nested_file(fake_hub: FakeHub) -> None:
    """repo_type="space" goes through /spaces/…; a nested path keeps its folders in the snapshot."""
    data = weights(2048, seed=1)
    commit = fake_hub.add_repo(SPACE, {"ckpts/model.safetensors": data, "app.py": "print()"}, repo_type="space")

    path = hf_hub_download(SPACE, "ckpts/model.safetensors", repo_type="space")

    assert read(path) == data
    expected = Path(constants.HF_HUB_CACHE, "spaces--rayli--Puppet-Master", "snapshots", commit, "ckpts")
    assert Path(path) == expected / "model.safetensors"
    assert fake_hub.requests[0].path == f"/spaces/{SPACE}/resolve/main/ckpts/model.safetensors"
    # a model repo of the same name does not exist
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(SPACE, "ckpts/model.safetensors")


def test_snapshot_download_skips_files_outside_allow_patterns(fake_hub: FakeHub) -> None:
    """Only the allowed files are fetched: the big one is never requested, not even with HEAD."""
    files = {
        "model_index.json": b"{}",
        "unet/config.json": CONFIG,
        "unet/diffusion_pytorch_model.safetensors": weights(4096),
        "big.bin": weights(64 * 1024, seed=2),
    }
    commit = fake_hub.add_repo(MODEL, files)

    folder = Path(snapshot_download(MODEL, allow_patterns=["*.json", "unet/*"]))

    assert folder.name == commit
    downloaded = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert downloaded == set(files) - {"big.bin"}
    assert all((folder / name).read_bytes() == files[name] for name in downloaded)
    assert fake_hub.requests_to("big.bin") == []
    assert fake_hub.requests_to(f"/api/models/{MODEL}/revision/main")  # the revision was resolved through the API
    # by commit: no info call, the tree listing is cached, and every file is already there
    fake_hub.requests.clear()
    assert Path(snapshot_download(MODEL, revision=commit, allow_patterns=["*.json", "unet/*"])) == folder
    assert fake_hub.requests == []


@pytest.mark.parametrize("filename", ["model.safetensors", "notes.txt"], ids=["lfs-from-cdn", "git-from-hub"])
def test_cut_off_download_resumes_with_range(fake_hub: FakeHub, filename: str) -> None:
    """The body stops after 4 KiB and the connection drops: the client asks for the rest with a Range request."""
    data = weights(10_000, seed=3)
    cut = 4 * TEST_DOWNLOAD_CHUNK_SIZE  # a whole number of the client's chunks: all of it is on disk
    fake_hub.add_repo(MODEL, {filename: data})
    fake_hub.cut_after(filename, cut)

    path = hf_hub_download(MODEL, filename)

    assert read(path) == data
    first, resumed = fake_hub.requests_to(filename, method="GET")
    assert (first.range, first.status) == (None, 200)
    assert (resumed.range, resumed.status) == (f"bytes={cut}-", 206)
    assert not list(Path(constants.HF_HUB_CACHE).rglob("*.incomplete"))


def test_gated_repo_needs_an_accepted_token(fake_hub: FakeHub) -> None:
    """401 GatedRepo without a token, 403 GatedRepo with one that has not accepted, the file with the accepted one."""
    data = weights(1024, seed=4)
    fake_hub.add_repo(GATED, {"unet/diffusion_pytorch_model.fp16.safetensors": data, "model_index.json": b"{}"})
    fake_hub.gate(GATED, accepted_tokens=(ACCEPTED_TOKEN,))
    filename = "unet/diffusion_pytorch_model.fp16.safetensors"

    with pytest.raises(GatedRepoError) as anonymous:
        hf_hub_download(GATED, filename)
    assert anonymous.value.response.status_code == 401
    with pytest.raises(GatedRepoError) as not_accepted:
        hf_hub_download(GATED, filename, token="hf_not_accepted")
    assert not_accepted.value.response.status_code == 403
    assert "not in the authorized list" in str(not_accepted.value)
    # listing stays public (as on the hub); snapshot_download fails on the first file
    assert HfApi().model_info(GATED).gated == "manual"
    with pytest.raises(GatedRepoError):
        snapshot_download(GATED)

    assert read(hf_hub_download(GATED, filename, token=ACCEPTED_TOKEN)) == data
    folder = Path(snapshot_download(GATED, token=ACCEPTED_TOKEN))
    assert (folder / "model_index.json").read_bytes() == b"{}"


def test_card_data_file_metadata_and_listing(fake_hub: FakeHub) -> None:
    """model_info / space_info read cardData (README front matter) and, with files_metadata, sizes and LFS sha256."""
    data = weights(1500, seed=5)
    fake_hub.add_repo(MODEL, {"model.safetensors": data, "config.json": CONFIG}, card_data={"license": "mit"})
    space_commit = fake_hub.add_repo(
        SPACE, {"ckpts/model.safetensors": data}, repo_type="space", card_data={"license": "cc-by-nc-sa-4.0"}
    )

    info = HfApi().model_info(MODEL, files_metadata=True)
    assert info.card_data.license == "mit"
    siblings = {s.rfilename: s for s in info.siblings}
    assert set(siblings) == {"model.safetensors", "config.json", "README.md"}
    assert (siblings["model.safetensors"].size, siblings["model.safetensors"].lfs.sha256) == (
        len(data),
        hashlib.sha256(data).hexdigest(),
    )
    assert siblings["config.json"].lfs is None and siblings["config.json"].size == len(CONFIG)
    assert model_info(MODEL).sha == info.sha  # the module-level function (an HfApi built at import) too

    space = HfApi().space_info(SPACE)
    assert (space.card_data.license, space.sha) == ("cc-by-nc-sa-4.0", space_commit)
    assert sorted(list_repo_files(SPACE, repo_type="space")) == ["README.md", "ckpts/model.safetensors"]


def test_missing_repo_revision_and_file(fake_hub: FakeHub) -> None:
    fake_hub.add_repo(MODEL, {"config.json": CONFIG})
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("owner/absent", "config.json")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(MODEL, "config.json", revision="v2")
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(MODEL, "absent.json")
    with pytest.raises(RevisionNotFoundError):
        HfApi().model_info(MODEL, revision="v2")


def test_hub_down_gives_the_clients_errors(fake_hub: FakeHub) -> None:
    """503 everywhere: API calls raise the HTTP error; downloads use the cache or say the file is not there."""
    fake_hub.add_repo(MODEL, {"config.json": CONFIG, "other.json": b"{}"})
    cached = hf_hub_download(MODEL, "config.json")
    fake_hub.down = True

    with pytest.raises(HfHubHTTPError) as api_error:
        HfApi().model_info(MODEL)
    assert api_error.value.response.status_code == 503
    with pytest.raises(LocalEntryNotFoundError):
        snapshot_download("owner/never-downloaded")
    # a client trap for callers: with no tree listing cached, the partial snapshot folder comes back as it is
    assert sorted(p.name for p in Path(snapshot_download(MODEL)).iterdir()) == ["config.json"]
    assert hf_hub_download(MODEL, "config.json") == cached  # the HEAD fails, the cached file is used
    with pytest.raises(LocalEntryNotFoundError) as download_error:
        hf_hub_download(MODEL, "other.json")  # nothing cached: the HEAD is retried (Retry-After: 0), then it gives up
    assert isinstance(download_error.value.__cause__, HfHubHTTPError)
    assert {r.status for r in fake_hub.requests_to("other.json")} == {503}


def test_a_subprocess_needs_only_the_environment(fake_hub: FakeHub, tmp_path: Path) -> None:
    """A child process (like the CLI) imports the client afresh: the environment use_fake_hub set is enough."""
    fake_hub.add_repo(SPACE, {"ckpts/model.safetensors": weights(2000, seed=6)}, repo_type="space")
    code = (
        "from huggingface_hub import hf_hub_download;"
        "print(hf_hub_download('rayli/Puppet-Master', 'ckpts/model.safetensors', repo_type='space'))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, timeout=60)
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip())
    assert path.is_relative_to(os.environ["HF_HUB_CACHE"]) and path.read_bytes() == weights(2000, seed=6)
    assert [r.server for r in fake_hub.requests] == ["hub", "cdn"]


@pytest.mark.parametrize(
    ("header", "body", "content_range"),
    [
        ("bytes=0-", b"0123456789", "bytes 0-9/10"),
        ("bytes=4-", b"456789", "bytes 4-9/10"),
        ("bytes=2-4", b"234", "bytes 2-4/10"),
        ("bytes=7-99", b"789", "bytes 7-9/10"),
        ("bytes=-3", b"789", "bytes 7-9/10"),
    ],
)
def test_range_requests(fake_hub: FakeHub, header: str, body: bytes, content_range: str) -> None:
    fake_hub.add_repo(MODEL, {"digits.txt": b"0123456789"})
    request = urllib.request.Request(f"{fake_hub.url}/{MODEL}/resolve/main/digits.txt", headers={"Range": header})
    with urllib.request.urlopen(request) as response:
        assert (response.status, response.read(), response.headers["Content-Range"]) == (206, body, content_range)


def test_unsatisfiable_range_is_416(fake_hub: FakeHub) -> None:
    fake_hub.add_repo(MODEL, {"digits.txt": b"0123456789"})
    request = urllib.request.Request(f"{fake_hub.url}/{MODEL}/resolve/main/digits.txt", headers={"Range": "bytes=10-"})
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request)
    assert (error.value.code, error.value.headers["Content-Range"]) == (416, "bytes */10")
