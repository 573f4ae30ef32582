"""Check our Puppet-Master UNet against the authors' reference code, side by side, in float64.

The authors' ``networks.py`` and ``network_utils.py`` (github.com/RuiningLi/puppet-master, pinned
commit below) are downloaded at run time into a temporary folder and imported from there; they are
never copied into this repository (they are not ours to copy). ``--reference PATH`` uses a local
copy instead: a folder holding both files, or a clone of the repository (its pinned commit is read
with ``git show``).

Both networks are built in a tiny configuration of the published architecture (four blocks, three
drag-conditioned resolutions 32/16/8, two layers per block, 14 frames, batch 2; the reference
hard-codes 14 frames and the 32/16/8 drag encodings) and given identical random weights: ours,
perturbed so that no parameter keeps a symmetric initial value, loaded into the reference with
``strict=True``. Inputs include active drags, empty slots, a drag on a cell boundary at the image
border and a drag absent in the first frames. Printed: the state-dict key comparison, max |ours -
reference| of the UNet output at two timesteps, drag-encoding equality at every resolution (float64
and float32) and our cached vs uncached drag conditioning. Exit status 1 when a check fails.

The reference's all-to-first processor (``AllToFirstXFormersAttnProcessor``) is set on every spatial
``attn1`` exactly as the authors' ``train.py`` does; its code runs unchanged. It calls
``xformers.ops.memory_efficient_attention``, which has no float64 or CPU kernels, so the module's
``xformers`` name is bound to a plain-torch function computing what xFormers documents,
``softmax(q @ k^T * scale + bias) @ v``. The reference needs no package beyond ours (diffusers,
torch, numpy).

Usage::

    python scripts/check_against_reference.py                      # downloads the reference
    python scripts/check_against_reference.py --reference ~/src/puppet-master
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import shutil
import subprocess
import sys
import tempfile
import types
import urllib.error
import urllib.request
from pathlib import Path

import torch

from backend.models import UNetDragSpatioTemporalModel, encode_drags

REFERENCE_REPO = "RuiningLi/puppet-master"
REFERENCE_COMMIT = "c88efd3c758c13546295482b2deb31fe887f6d49"  # 2024-09-28, the repository's HEAD when checked
REFERENCE_FILES = ("networks.py", "network_utils.py")
RAW_URL = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"

# The published architecture (same blocks, layers and state-dict keys) at small widths; the reference
# accepts the same keyword names.
CONFIG = dict(
    block_out_channels=(32, 64, 96, 96),
    layers_per_block=2,
    cross_attention_dim=32,
    num_attention_heads=(2, 4, 6, 6),
    num_drags=5,
    pos_embed_dim=16,
    drag_embedder_out_channels=(16, 32, 32),
)
NUM_FRAMES = 14  # hard-coded in the reference's all-to-first processor and blocks
LATENT_SIZE = 32  # the reference encodes drags at 32, 16 and 8 only
BATCH = 2
TIMESTEPS = (0.25 * 6.5, 0.25 * -1.2)  # 0.25 * log(sigma) at a high and a low noise level
ENCODING_RESOLUTIONS = (32, 16, 8)


class CheckFailed(Exception):
    """The reference could not be obtained or imported; the message says what to do."""


# ---------------------------------------------------------------- getting the reference


def download_reference(folder: Path, commit: str) -> None:
    for name in REFERENCE_FILES:
        url = RAW_URL.format(repo=REFERENCE_REPO, commit=commit, path=name)
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                (folder / name).write_bytes(response.read())
        except (urllib.error.URLError, TimeoutError) as error:
            raise CheckFailed(
                f"could not download {url} ({error}); check access to raw.githubusercontent.com, or pass "
                f"--reference PATH with a clone of github.com/{REFERENCE_REPO} or a folder holding "
                + " and ".join(REFERENCE_FILES)
            ) from error


def copy_reference(source: Path, folder: Path, commit: str) -> None:
    """Copy the reference files from a folder holding them, or read them from a git repository at ``commit``."""
    if all((source / name).is_file() for name in REFERENCE_FILES):
        for name in REFERENCE_FILES:
            shutil.copyfile(source / name, folder / name)
        return
    for name in REFERENCE_FILES:
        result = subprocess.run(
            ["git", "-C", str(source), "show", f"{commit}:{name}"], capture_output=True, check=False
        )
        if result.returncode != 0:
            raise CheckFailed(
                f"--reference {source}: neither a folder holding {' and '.join(REFERENCE_FILES)} nor a git "
                f"repository with {name} at commit {commit[:12]} ({result.stderr.decode().strip()})"
            )
        (folder / name).write_bytes(result.stdout)


def import_reference(folder: Path) -> types.ModuleType:
    """Import the reference's ``networks`` from ``folder`` (it imports ``network_utils`` as a top-level module)."""
    for name in ("networks", "network_utils"):
        if name in sys.modules:
            raise CheckFailed(f"a module named {name!r} is already imported; run this script on its own")
    sys.path.insert(0, str(folder))
    try:
        networks = importlib.import_module("networks")
    except ModuleNotFoundError as error:
        raise CheckFailed(
            f"the reference code imports {error.name!r}, which this environment lacks; install it "
            f"(pip install {error.name}) in a separate environment and run this script there"
        ) from error
    finally:
        sys.path.remove(str(folder))
    # the reference's all-to-first processor calls xformers.ops.memory_efficient_attention by module name
    networks.xformers = types.SimpleNamespace(ops=types.SimpleNamespace(memory_efficient_attention=plain_attention))
    return networks


def plain_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attn_bias=None, op=None, scale: float | None = None
) -> torch.Tensor:
    """What ``xformers.ops.memory_efficient_attention`` computes, for ``[batch*heads, tokens, dim]`` inputs."""
    scale = query.shape[-1] ** -0.5 if scale is None else scale
    scores = query @ key.transpose(-1, -2) * scale
    if attn_bias is not None:
        scores = scores + attn_bias
    return scores.softmax(dim=-1) @ value


# ---------------------------------------------------------------- the two networks and their inputs


def build_models(networks: types.ModuleType, seed: int) -> tuple[torch.nn.Module, torch.nn.Module, list[str]]:
    """Ours with perturbed random weights, and the reference with the same weights; plus the key differences."""
    torch.manual_seed(seed)
    ours = UNetDragSpatioTemporalModel(**CONFIG).double().eval()
    with torch.no_grad():
        for parameter in ours.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    reference = networks.UNetDragSpatioTemporalConditionModel(**CONFIG, num_frames=NUM_FRAMES).double().eval()
    ours_keys, reference_keys = set(ours.state_dict()), set(reference.state_dict())
    differences = [f"only ours: {key}" for key in sorted(ours_keys - reference_keys)]
    differences += [f"only reference: {key}" for key in sorted(reference_keys - ours_keys)]
    if not differences:
        reference.load_state_dict(ours.state_dict(), strict=True)
    # all-to-first on every spatial attn1, as the authors' train.py sets it; the rest keep diffusers' default
    for name, module in reference.named_modules():
        if name.endswith(".attn1") and ".transformer_blocks." in name:
            module.set_processor(networks.AllToFirstXFormersAttnProcessor())
    return ours, reference, differences


def make_drags() -> torch.Tensor:
    """``(2, 14, 5, 4)`` drags covering the cases where the two implementations could part ways."""
    t = torch.linspace(0, 1, NUM_FRAMES, dtype=torch.float64)[:, None]
    drags = torch.zeros(BATCH, NUM_FRAMES, 5, 4, dtype=torch.float64)

    def straight(start: tuple[float, float], end: tuple[float, float]) -> torch.Tensor:
        start_t, end_t = torch.tensor(start, dtype=torch.float64), torch.tensor(end, dtype=torch.float64)
        return torch.cat([start_t.expand(NUM_FRAMES, 2), start_t + (end_t - start_t) * t], dim=1)

    drags[0, :, 0] = straight((0.31, 0.42), (0.55, 0.38))  # an ordinary drag
    drags[0, :, 1] = straight((1.0, 0.5), (0.75, 0.5))  # starts on a cell boundary at the image border
    drags[0, 5:, 2] = straight((0.2, 0.7), (0.3, 0.9))[5:]  # absent in the first five frames
    drags[1, :, 0] = straight((0.6, 0.6), (0.4, 0.2))
    drags[1, :, 3] = straight((0.0, 0.25), (0.125, 0.25))  # left border, cell boundaries at r = 8, 16, 32
    return drags  # slots 3-4 of video 0 and 1, 2, 4 of video 1 are empty


def make_inputs(seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    shape = (BATCH, NUM_FRAMES, 4, LATENT_SIZE, LATENT_SIZE)
    return dict(
        sample=torch.randn(shape, generator=generator, dtype=torch.float64),
        image_latents=torch.randn(BATCH, 4, LATENT_SIZE, LATENT_SIZE, generator=generator, dtype=torch.float64),
        encoder_hidden_states=torch.randn(BATCH, 1, CONFIG["cross_attention_dim"], generator=generator).double(),
        drags=make_drags(),
    )


# ---------------------------------------------------------------- the checks


def compare(networks: types.ModuleType, seed: int, tolerance: float) -> bool:
    ours, reference, differences = build_models(networks, seed)
    if differences:
        print(f"state-dict keys: {len(differences)} differ: " + "; ".join(differences[:10]))
        return False
    print(f"state-dict keys: identical sets ({len(ours.state_dict())} keys), strict load into the reference")
    inputs = make_inputs(seed)
    ok = True

    with torch.no_grad():
        for timestep in TIMESTEPS:
            t = torch.tensor(timestep, dtype=torch.float64)
            ours_out = ours(timestep=t, **inputs).sample
            reference_out = reference(timestep=t, added_time_ids=None, **inputs)
            difference = (ours_out - reference_out).abs().max().item()
            within = difference <= tolerance
            ok &= within
            print(
                f"UNet output, timestep {timestep:+.3f}: max |ours - reference| = {difference:.2e} "
                f"(outputs up to {reference_out.abs().max().item():.2f}) {'ok' if within else 'OVER ' + str(tolerance)}"
            )

        for dtype in (torch.float64, torch.float32):
            drags = inputs["drags"].to(dtype)
            for resolution in ENCODING_RESOLUTIONS:
                identical = torch.equal(
                    encode_drags(drags, resolution, resolution),
                    reference._convert_drag_to_concatting_image(drags, resolution),
                )
                ok &= identical
                name = str(dtype).removeprefix("torch.")
                print(f"drag encoding r = {resolution}, {name}: {'bit-identical' if identical else 'DIFFERENT'}")

        t = torch.tensor(TIMESTEPS[0], dtype=torch.float64)
        cond = ours.prepare_drag_conditioning(inputs["drags"], LATENT_SIZE)
        identical = torch.equal(ours(timestep=t, **{**inputs, "drags": cond}).sample, ours(timestep=t, **inputs).sample)
        ok &= identical
        print(f"ours, cached vs uncached drag conditioning: {'bit-identical' if identical else 'DIFFERENT'}")
    return ok


def file_digests(folder: Path) -> str:
    return ", ".join(
        f"{name} sha256 {hashlib.sha256((folder / name).read_bytes()).hexdigest()[:16]}" for name in REFERENCE_FILES
    )


def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="puppet-master-reference-") as temp:
        folder = Path(temp)
        try:
            if args.reference is None:
                download_reference(folder, args.commit)
                source = f"github.com/{REFERENCE_REPO} at {args.commit[:12]}"
            else:
                copy_reference(args.reference.expanduser(), folder, args.commit)
                source = str(args.reference)
            networks = import_reference(folder)
        except CheckFailed as error:
            print(f"check_against_reference: {error}", file=sys.stderr)
            return 2
        print(f"reference: {source} ({file_digests(folder)})")
        print(f"torch {torch.__version__}; float64; seed {args.seed}; tolerance {args.tolerance:g}")
        ok = compare(networks, args.seed, args.tolerance)
    print("all checks passed" if ok else "CHECK FAILED")
    return 0 if ok else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--reference",
        type=Path,
        help="a local copy instead of downloading: a folder with networks.py and network_utils.py, or a git clone",
    )
    parser.add_argument(
        "--commit",
        default=REFERENCE_COMMIT,
        help="the reference commit, for downloads and git clones (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and inputs (default: %(default)s)")
    parser.add_argument(
        "--tolerance", type=float, default=1e-10, help="largest max |ours - reference| accepted (default: %(default)g)"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main(parse_args()))
