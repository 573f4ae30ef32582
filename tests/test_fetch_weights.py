"""``puppet-master fetch-weights`` end to end against a local server posing as the Hugging Face Hub.

The hub serves a tiny Space ``rayli/Puppet-Master`` (``ckpts/model.safetensors``: a tiny-config UNet) and a
tiny gated SVD img2vid repo laid out like the real one (plain and fp16 weights, and an SVD UNet that must
never be downloaded).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from backend import cli, fetch_weights
from backend.fetch_weights import SVD_REPO, UNET_FILENAME, UNET_REPO, FetchError
from backend.models.configs import TINY_UNET_CONFIG
from backend.pipeline.pipeline import PuppetMasterPipeline
from backend.pipeline.tiny import build_tiny_pipeline
from tests.fake_hub import FakeHub, fake_hub_fixture  # noqa: F401 - the fake_hub fixture

TOKEN = "hf_accepted_the_licence"
UNET_CONFIG = {**TINY_UNET_CONFIG, "sample_size": 8}


def files_of(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


@pytest.fixture
def published(fake_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, torch.Tensor]:
    """Both repos on the fake hub, a token that accepted SVD's licence, an empty PUPPET_MASTER_HOME.
    Returns the UNet state dict the Space serves."""
    tiny = build_tiny_pipeline(seed=3)
    unet_state = {key: value.contiguous() for key, value in tiny.unet.state_dict().items()}
    save_file(unet_state, tmp_path / "space_unet.safetensors")
    fake_hub.add_repo(
        UNET_REPO, {UNET_FILENAME: (tmp_path / "space_unet.safetensors").read_bytes(), "app.py": "print()"},
        repo_type="space", card_data={"license": "cc-by-nc-sa-4.0"},
    )  # fmt: skip

    svd = tmp_path / "svd"
    for name in ("vae", "image_encoder", "feature_extractor", "scheduler"):
        getattr(tiny, name).save_pretrained(svd / name)
    for name in ("vae", "image_encoder"):  # the fp16 variants the real repo also has
        getattr(tiny, name).to(torch.float16).save_pretrained(svd / name, variant="fp16")
    repo_files = files_of(svd)
    repo_files["unet/diffusion_pytorch_model.safetensors"] = b"\0" * 4096  # SVD's own UNet: never needed
    repo_files["model_index.json"] = json.dumps({"_class_name": "StableVideoDiffusionPipeline"})
    fake_hub.add_repo(SVD_REPO, repo_files, card_data={"license": "other", "license_name": "svd-community"})
    fake_hub.gate(SVD_REPO, accepted_tokens=(TOKEN,))

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("PUPPET_MASTER_HOME", str(tmp_path / "home"))
    return unet_state


def fetch(**options) -> tuple[Path, list[str]]:
    lines: list[str] = []
    folder = fetch_weights.fetch_weights(unet_config=UNET_CONFIG, echo=lines.append, **options)
    return folder, lines


def test_fetch_assembles_a_pipeline_from_the_space_and_only_the_svd_parts_it_needs(fake_hub, published) -> None:
    folder, lines = fetch()
    assert folder == fetch_weights.default_model_dir()

    stored = load_file(folder / "unet" / "diffusion_pytorch_model.safetensors")
    assert {value.dtype for value in stored.values()} == {torch.float16}  # stored fp16 by default
    assert all(torch.equal(stored[key], value.to(torch.float16)) for key, value in published.items())
    pipeline = PuppetMasterPipeline.from_pretrained(folder)  # the folder is a ready pipeline
    assert pipeline.unet.config.sample_size == 8

    record = json.loads((folder / "fetch-record.json").read_text())
    assert record["sources"]["unet"]["repo_type"] == "space"
    assert record["sources"]["unet"]["commit"] == fake_hub.commit(UNET_REPO, "space")
    assert record["sources"]["unet"]["license"] == "cc-by-nc-sa-4.0"
    assert record["sources"]["svd"]["license"] == "svd-community"
    assert any("licence: cc-by-nc-sa-4.0" in line for line in lines)

    downloaded = {request.path for request in fake_hub.requests if request.method == "GET"}
    assert not any("unet/" in path for path in downloaded)  # never SVD's own UNet
    assert any(path.endswith("vae/diffusion_pytorch_model.fp16.safetensors") for path in downloaded)
    assert not any(path.endswith("vae/diffusion_pytorch_model.safetensors") for path in downloaded)
    assert not (fetch_weights.puppet_master_home() / "downloads").exists() or not any(
        (fetch_weights.puppet_master_home() / "downloads").rglob("*.safetensors")
    )  # the downloads are removed once assembled


def test_a_second_run_verifies_and_does_nothing_and_a_damaged_folder_is_rebuilt(fake_hub, published) -> None:
    folder, _ = fetch()
    fake_hub.requests.clear()
    _, lines = fetch()
    assert lines == [f"Puppet-Master weights are ready in {folder} (verified; nothing to do)"]
    assert fake_hub.requests == []  # not even a metadata request

    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"truncated")
    _, lines = fetch()
    assert "unet/diffusion_pytorch_model.safetensors is missing or changed" in lines[0]
    assert PuppetMasterPipeline.from_pretrained(folder).unet is not None


def test_a_cut_off_download_resumes_where_it_stopped(fake_hub, published, tmp_path) -> None:
    fake_hub.cut_after(UNET_FILENAME, 3072)  # a whole number of the fixture's 1 KiB pieces
    folder, _ = fetch(dtype="fp32")
    gets = fake_hub.requests_to(UNET_FILENAME, method="GET")
    assert any(request.range == "bytes=3072-" for request in gets), [request.range for request in gets]
    saved = load_file(folder / "unet" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(saved[key], value) for key, value in published.items())


def test_a_gated_repo_without_access_says_what_to_do(fake_hub, published, monkeypatch, capsys) -> None:
    monkeypatch.delenv("HF_TOKEN")
    config = fetch_weights.puppet_master_home().parent / "unet.json"
    config.write_text(json.dumps(UNET_CONFIG))
    assert cli.main(["fetch-weights", "--unet-config", str(config)]) == 2
    error = capsys.readouterr().err
    assert "is gated and no Hugging Face token was sent" in error and "hf auth login" in error
    assert "Traceback" not in error and error.count("\n") == 1

    monkeypatch.setenv("HF_TOKEN", "hf_not_accepted")
    with pytest.raises(FetchError, match="has not been granted access yet"):
        fetch()
    assert not (fetch_weights.default_model_dir() / "fetch-record.json").exists()


def test_no_hub_and_a_full_disk_are_one_sentence_each(fake_hub, published, monkeypatch) -> None:
    fake_hub.down = True
    with pytest.raises(FetchError, match="answered 503"):
        fetch()
    fake_hub.down = False

    class Usage:
        free = 1000

    monkeypatch.setattr(fetch_weights.shutil, "disk_usage", lambda _path: Usage)
    with pytest.raises(FetchError, match="not enough disk space"):
        fetch()
    assert not [request for request in fake_hub.requests if request.server == "cdn"]  # checked before downloading


def test_local_files_need_no_hub_and_bad_paths_are_refused(fake_hub, published, tmp_path) -> None:
    tiny = build_tiny_pipeline(seed=3)
    for name in ("vae", "image_encoder", "feature_extractor", "scheduler"):
        getattr(tiny, name).save_pretrained(tmp_path / "local_svd" / name)
    fake_hub.down = True  # nothing may be asked of the hub
    folder, lines = fetch(svd=str(tmp_path / "local_svd"), unet=str(tmp_path / "space_unet.safetensors"))
    assert "(local)" in lines[1] and (folder / "fetch-record.json").is_file()
    with pytest.raises(FetchError, match="not an SVD img2vid folder"):
        fetch(svd=str(tmp_path), unet=str(tmp_path / "space_unet.safetensors"))
    with pytest.raises(FetchError, match="no such weights file"):
        fetch(unet=str(tmp_path / "missing.safetensors"))
