"""Finding and checking Puppet-Master UNet weights: local files, hub repos and the published Space.

The model (:mod:`backend.models.unet_drag`) only builds itself and adopts tensors; everything that
touches files, the Hugging Face hub or the comparison of a state dict against the model lives here.

The authors publish the weights in the Hugging Face *Space* ``rayli/Puppet-Master`` as
``ckpts/model.safetensors``; there is no model repo, so a plain ``hf_hub_download`` (which
defaults to ``repo_type="model"``) cannot find them. :func:`resolve_weights_file` knows that.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import torch

PUBLISHED_UNET_REPO = "rayli/Puppet-Master"
PUBLISHED_UNET_FILENAME = "ckpts/model.safetensors"
PUBLISHED_UNET_REPO_TYPE = "space"
# The weights file looked for in a local folder or in any other hub repo.
DEFAULT_CHECKPOINT_FILENAME = "model.safetensors"
# Key fragments of the drag branch: the only weights a model built from SVD may lack.
DRAG_BRANCH_KEYS = (".flow_convs.", ".drag_token_mlps.")
# SVD's added-time (fps, motion bucket, noise augmentation) embedding, which Puppet-Master drops.
SVD_ADDED_TIME_KEYS = ("add_time_proj.", "add_embedding.")


class CheckpointMismatchError(ValueError):
    """A state dict does not fit the model: lists missing, unexpected and mis-shaped keys."""


def _listing(title: str, items: list[str], shown: int = 10) -> str:
    """One line of a mismatch report: the count and the first ``shown`` items."""
    if not items:
        return ""
    more = f" (+{len(items) - shown} more)" if len(items) > shown else ""
    return f"\n  {title} ({len(items)}){more}: " + ", ".join(items[:shown])


def check_state_dict(
    state_dict: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], model_description: str
) -> None:
    """Raise :class:`CheckpointMismatchError` unless ``state_dict`` has exactly the keys and shapes of ``expected``.

    Checked before loading so that a wrong file (another model, another ``num_drags``) fails with
    the full list of differences instead of torch's first error.
    """
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    mismatched = [
        f"{key}: checkpoint {tuple(state_dict[key].shape)} vs model {tuple(value.shape)}"
        for key, value in expected.items()
        if key in state_dict and tuple(state_dict[key].shape) != tuple(value.shape)
    ]
    if missing or unexpected or mismatched:
        raise CheckpointMismatchError(
            f"checkpoint does not match {model_description}"
            + _listing("missing keys", missing)
            + _listing("unexpected keys", unexpected)
            + _listing("shape mismatches", mismatched)
        )


def svd_state_dict(svd_state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An SVD UNet state dict without the added-time embedding Puppet-Master does not have."""
    return {key: value for key, value in svd_state.items() if not key.startswith(SVD_ADDED_TIME_KEYS)}


def check_svd_weights_fit(missing: Iterable[str], unexpected: Iterable[str]) -> None:
    """After a non-strict load of SVD weights: every SVD weight found its place, only the drag branch is new."""
    unexpected = list(unexpected)
    not_drag = [key for key in missing if not any(part in key for part in DRAG_BRANCH_KEYS)]
    if unexpected or not_drag:
        raise CheckpointMismatchError(
            f"SVD UNet does not fit: unexpected keys {unexpected[:10]}, missing non-drag keys {not_drag[:10]}"
        )


def _hub_source(repo_id: str, filename: str | None, repo_type: str | None) -> tuple[str, str | None]:
    """The file and repo type to ask the hub for: the published Space's layout unless told otherwise."""
    if repo_id == PUBLISHED_UNET_REPO and repo_type is None:
        repo_type = PUBLISHED_UNET_REPO_TYPE
    if filename is None:
        published = repo_id == PUBLISHED_UNET_REPO and repo_type == PUBLISHED_UNET_REPO_TYPE
        filename = PUBLISHED_UNET_FILENAME if published else DEFAULT_CHECKPOINT_FILENAME
    return filename, repo_type


def resolve_weights_file(
    path_or_repo_id: str | os.PathLike,
    filename: str | None = None,
    *,
    repo_type: str | None = None,
    **hub_kwargs: object,
) -> str:
    """A local file, ``filename`` inside a local folder, or ``filename`` of a hub repo (downloaded or cached).

    Args:
        path_or_repo_id: a weights file, a folder, or a hub ``owner/name``.
        filename: the file inside the folder or repo; ``None`` means the default for the source:
            ``ckpts/model.safetensors`` for the published Space, ``model.safetensors`` otherwise.
        repo_type: the hub repo type (``"model"``, ``"space"``, ...); ``None`` means ``"space"`` for
            the published ``rayli/Puppet-Master`` and the hub's default (a model repo) for any other.
        hub_kwargs: ``revision``, ``cache_dir``, ``token``, ``local_files_only``… passed to
            ``huggingface_hub.hf_hub_download``.
    """
    path = os.fspath(path_or_repo_id)
    if os.path.isfile(path):
        return path
    if os.path.isdir(path):
        name = filename or DEFAULT_CHECKPOINT_FILENAME
        candidate = os.path.join(path, name)
        if not os.path.isfile(candidate):
            raise FileNotFoundError(
                f"no {name!r} in folder {path!r}: pass the weights file itself, or its name inside the folder"
            )
        return candidate
    if path.startswith((".", "/", "~")) or path.count("/") != 1:
        raise FileNotFoundError(
            f"{path!r} is neither an existing file or folder nor a hub repo id (owner/name); "
            f"the published weights are {PUBLISHED_UNET_REPO!r}"
        )
    from huggingface_hub import hf_hub_download

    filename, repo_type = _hub_source(path, filename, repo_type)
    return hf_hub_download(repo_id=path, filename=filename, repo_type=repo_type, **hub_kwargs)


def load_weights_file(
    path: str | os.PathLike, device: torch.device | str = "cpu", dtype: torch.dtype | None = None
) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors`` state dict onto ``device``, cast to ``dtype`` when given.

    Tensors are read and cast one at a time on the CPU before they move, so memory holds the result plus
    one tensor (not an fp32 copy of a 6.7 GB checkpoint beside its fp16 cast), and a GPU never sees two copies.
    """
    from safetensors import safe_open

    state_dict: dict[str, torch.Tensor] = {}
    with safe_open(os.fspath(path), framework="pt", device="cpu") as weights:
        for key in weights.keys():
            tensor = weights.get_tensor(key)
            if dtype is not None:
                tensor = tensor.to(dtype)
            state_dict[key] = tensor.to(device)
    return state_dict
