"""UNetDragSpatioTemporalModel: checkpoint layout, loading, drag branch behaviour, caching, training hooks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import UNetSpatioTemporalConditionModel
from diffusers.models.resnet import AlphaBlender
from safetensors.torch import save_file

from backend.models import (
    PUBLISHED_UNET_FILENAME,
    PUBLISHED_UNET_REPO,
    CheckpointMismatchError,
    UNetDragSpatioTemporalModel,
    resolve_weights_file,
)
from backend.models.configs import TINY_UNET_CONFIG
from tests.conftest import make_inputs

KEYS_FILE = Path(__file__).parent / "data" / "checkpoint-keys.tsv"
SHARED_KEYS_FILE = Path(__file__).parents[2] / "shared" / "spec" / "checkpoint-keys.tsv"


def read_key_table(path: Path) -> dict[str, tuple[int, ...]]:
    rows = (line.rstrip("\n").split("\t") for line in path.read_text().splitlines() if line.strip())
    return {key: tuple(int(n) for n in shape.split("x")) for key, shape in rows}


def run(model: UNetDragSpatioTemporalModel, inputs: dict, **overrides) -> torch.Tensor:
    with torch.no_grad():
        return model(**{**inputs, **overrides}).sample


# ---------------------------------------------------------------- checkpoint layout


def test_vendored_key_table_matches_shared_spec() -> None:
    if not SHARED_KEYS_FILE.exists():
        pytest.skip("../shared/spec is not beside this checkout")
    assert KEYS_FILE.read_text() == SHARED_KEYS_FILE.read_text()


def test_full_size_model_has_exactly_the_published_keys_and_shapes() -> None:
    expected = read_key_table(KEYS_FILE)
    with torch.device("meta"):
        model = UNetDragSpatioTemporalModel()
    actual = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert sorted(set(expected) - set(actual)) == []
    assert sorted(set(actual) - set(expected)) == []
    assert {k: (actual[k], v) for k, v in expected.items() if actual[k] != v} == {}
    assert len(actual) == 1664
    assert sum(value.numel() for value in model.state_dict().values()) == 1_675_809_962


# ---------------------------------------------------------------- loading and saving


def test_state_dict_of_another_instance_loads_strictly(tiny_unet, inputs) -> None:
    torch.manual_seed(123)
    other = UNetDragSpatioTemporalModel(**TINY_UNET_CONFIG).eval()
    assert not torch.equal(run(other, inputs), run(tiny_unet, inputs))
    other.load_state_dict(tiny_unet.state_dict(), strict=True)
    assert torch.equal(run(other, inputs), run(tiny_unet, inputs))


def test_save_pretrained_round_trip(tiny_unet, inputs, tmp_path) -> None:
    tiny_unet.save_pretrained(tmp_path / "unet")
    loaded = UNetDragSpatioTemporalModel.from_pretrained(tmp_path / "unet").eval()
    assert loaded.config.num_drags == 5
    assert torch.equal(run(loaded, inputs), run(tiny_unet, inputs))


@pytest.mark.parametrize("where", ["file", "folder"])
def test_from_puppet_master_checkpoint_local(tiny_unet, inputs, tmp_path, where) -> None:
    save_file(tiny_unet.state_dict(), tmp_path / "model.safetensors")
    source = tmp_path / "model.safetensors" if where == "file" else tmp_path
    loaded = UNetDragSpatioTemporalModel.from_puppet_master_checkpoint(source, **TINY_UNET_CONFIG)
    assert torch.equal(run(loaded, inputs), run(tiny_unet, inputs))


def write_hub_file(cache: Path, repo_folder: str, filename: str, state: dict[str, torch.Tensor]) -> Path:
    """Lay out one file of a hub repo in a huggingface_hub cache (``models--owner--name``, ``spaces--…``)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / repo_folder
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    path = repo / "snapshots" / commit / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, path)
    return path


def test_from_puppet_master_checkpoint_hub_cache(tiny_unet, inputs, tmp_path) -> None:
    """The hub path runs huggingface_hub's real resolution against a local cache (no network)."""
    write_hub_file(tmp_path / "hub", "models--example--puppet-master", "weights.safetensors", tiny_unet.state_dict())
    loaded = UNetDragSpatioTemporalModel.from_puppet_master_checkpoint(
        "example/puppet-master",
        filename="weights.safetensors",
        cache_dir=tmp_path / "hub",
        local_files_only=True,
        torch_dtype=torch.float32,
        **TINY_UNET_CONFIG,
    )
    assert torch.equal(run(loaded, inputs), run(tiny_unet, inputs))


def test_published_repo_id_loads_from_the_space(tiny_unet, inputs, tmp_path) -> None:
    """``rayli/Puppet-Master`` alone means the Space's ``ckpts/model.safetensors``: there is no model repo."""
    cache = tmp_path / "hub"
    write_hub_file(cache, "spaces--rayli--Puppet-Master", PUBLISHED_UNET_FILENAME, tiny_unet.state_dict())
    # a model repo of the same name holding other weights must not be what is read
    torch.manual_seed(1)
    decoy = UNetDragSpatioTemporalModel(**TINY_UNET_CONFIG).state_dict()
    for name in ("model.safetensors", PUBLISHED_UNET_FILENAME):
        write_hub_file(cache, "models--rayli--Puppet-Master", name, decoy)
    loaded = UNetDragSpatioTemporalModel.from_puppet_master_checkpoint(
        PUBLISHED_UNET_REPO, cache_dir=cache, local_files_only=True, **TINY_UNET_CONFIG
    )
    assert torch.equal(run(loaded, inputs), run(tiny_unet, inputs))


@pytest.mark.parametrize(
    ("repo_id", "repo_type", "expected"),
    [
        (PUBLISHED_UNET_REPO, None, "spaces--rayli--Puppet-Master/ckpts/model.safetensors"),
        (PUBLISHED_UNET_REPO, "model", "models--rayli--Puppet-Master/model.safetensors"),
        ("example/puppet-master", None, "models--example--puppet-master/model.safetensors"),
        ("example/puppet-master", "space", "spaces--example--puppet-master/model.safetensors"),
    ],
)
def test_default_filename_and_repo_type_depend_on_the_source(tmp_path, repo_id, repo_type, expected) -> None:
    cache = tmp_path / "hub"
    for folder in ("spaces--rayli--Puppet-Master", "models--rayli--Puppet-Master"):
        for name in ("model.safetensors", PUBLISHED_UNET_FILENAME):
            write_hub_file(cache, folder, name, {})
    for folder in ("models--example--puppet-master", "spaces--example--puppet-master"):
        write_hub_file(cache, folder, "model.safetensors", {})
    path = Path(resolve_weights_file(repo_id, repo_type=repo_type, cache_dir=cache, local_files_only=True))
    folder, file = expected.split("/", 1)
    assert path.relative_to(cache).parts[0] == folder
    assert path.relative_to(cache / folder / "snapshots").as_posix().split("/", 1)[1] == file


def test_mismatched_checkpoint_lists_missing_unexpected_and_shapes(tiny_unet, tmp_path) -> None:
    state = dict(tiny_unet.state_dict())
    state.pop("conv_in.bias")
    state["add_embedding.linear_1.weight"] = torch.zeros(3, 3)
    state["conv_out.weight"] = torch.zeros(4, 32, 1, 1)
    save_file(state, tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointMismatchError) as error:
        UNetDragSpatioTemporalModel.from_puppet_master_checkpoint(tmp_path / "bad.safetensors", **TINY_UNET_CONFIG)
    message = str(error.value)
    assert "missing keys (1): conv_in.bias" in message
    assert "unexpected keys (1): add_embedding.linear_1.weight" in message
    assert "conv_out.weight: checkpoint (4, 32, 1, 1) vs model (4, 32, 3, 3)" in message


def test_missing_checkpoint_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        UNetDragSpatioTemporalModel.from_puppet_master_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match="neither an existing file"):
        UNetDragSpatioTemporalModel.from_puppet_master_checkpoint(tmp_path / "nope.safetensors")


def tiny_svd_unet() -> UNetSpatioTemporalConditionModel:
    config = {k: v for k, v in TINY_UNET_CONFIG.items() if k not in ("pos_embed_dim", "drag_embedder_out_channels")}
    torch.manual_seed(7)
    return UNetSpatioTemporalConditionModel(
        **config, addition_time_embed_dim=8, projection_class_embeddings_input_dim=24
    )


def test_from_svd_unet_copies_weights_and_zero_inits_drag_embedders(inputs) -> None:
    svd = tiny_svd_unet()
    model = UNetDragSpatioTemporalModel.from_svd_unet(
        svd, pos_embed_dim=TINY_UNET_CONFIG["pos_embed_dim"], drag_embedder_out_channels=(16, 32)
    ).eval()
    ours = model.state_dict()
    copied = 0
    for key, value in svd.state_dict().items():
        if key.startswith(("add_embedding.", "add_time_proj.")):
            assert key not in ours
            continue
        assert torch.equal(ours[key], value), key
        copied += 1
    assert copied == len(ours) - sum(".flow_convs." in k or ".drag_token_mlps." in k for k in ours)
    conv_outs = [value for key, value in ours.items() if ".flow_convs." in key and ".conv_out." in key]
    assert conv_outs and all(torch.count_nonzero(value) == 0 for value in conv_outs)
    assert model.config.addition_time_embed_dim == 8
    assert run(model, inputs).shape == inputs["sample"].shape


# ---------------------------------------------------------------- drag branch behaviour


def capture_transformer_inputs(model: UNetDragSpatioTemporalModel) -> tuple[list, list]:
    """Record (hidden_states, context) entering every drag-conditioned transformer, and resnet outputs."""
    transformer_inputs, resnet_outputs = [], []
    for block in [*model.down_blocks, *model.up_blocks]:
        if not hasattr(block, "flow_convs"):
            continue
        for resnet, attention in zip(block.resnets, block.attentions, strict=True):
            resnet.register_forward_hook(lambda _m, _a, out: resnet_outputs.append(out))
            attention.register_forward_pre_hook(
                lambda _m, args, kwargs: transformer_inputs.append((args[0], kwargs["encoder_hidden_states"])),
                with_kwargs=True,
            )
    return transformer_inputs, resnet_outputs


def test_zero_initialised_drag_embedders_leave_features_unchanged(tiny_unet, inputs) -> None:
    tiny_unet.zero_init_drag_embedders()
    transformer_inputs, resnet_outputs = capture_transformer_inputs(tiny_unet)
    run(tiny_unet, inputs)
    assert len(transformer_inputs) == len(resnet_outputs) == 6  # 2 down blocks x 1 layer + 2 up blocks x 2 layers
    for (modulated, _), features in zip(transformer_inputs, resnet_outputs, strict=True):
        assert torch.equal(modulated, features)


def test_random_drag_embedders_do_modulate(tiny_unet, inputs) -> None:
    transformer_inputs, resnet_outputs = capture_transformer_inputs(tiny_unet)
    run(tiny_unet, inputs)
    assert not torch.equal(transformer_inputs[0][0], resnet_outputs[0])


def test_cached_and_uncached_drag_conditioning_are_identical(tiny_unet, inputs) -> None:
    cond = tiny_unet.prepare_drag_conditioning(inputs["drags"], latent_size=8)
    uncached = [run(tiny_unet, inputs, timestep=torch.tensor(t)) for t in (0.9, -0.4)]
    cached = [run(tiny_unet, inputs, timestep=torch.tensor(t), drags=cond) for t in (0.9, -0.4)]
    for a, b in zip(uncached, cached, strict=True):
        assert torch.equal(a, b)


def test_conditioning_prepared_for_other_shapes_is_rejected(tiny_unet, inputs) -> None:
    cond = tiny_unet.prepare_drag_conditioning(inputs["drags"][:1], latent_size=8)
    with pytest.raises(ValueError, match="prepared for batch 1"):
        run(tiny_unet, inputs, drags=cond)


def test_drag_tokens_of_empty_slots_are_zero(tiny_unet, inputs) -> None:
    transformer_inputs, _ = capture_transformer_inputs(tiny_unet)
    run(tiny_unet, inputs)  # drags 0 and 1 active, 2-4 empty
    for _, context in transformer_inputs:
        assert context.shape[1:] == (6, TINY_UNET_CONFIG["cross_attention_dim"])  # CLIP token + 5 drag tokens
        assert torch.count_nonzero(context[:, 3:]) == 0
        assert torch.count_nonzero(context[:, 1]) > 0 and torch.count_nonzero(context[:, 2]) > 0


def test_a_drag_present_in_some_frames_only_is_not_empty(tiny_unet, inputs) -> None:
    drags = inputs["drags"].clone()
    drags[:, 1:, 1] = 0  # drag 1 exists in frame 0 only
    transformer_inputs, _ = capture_transformer_inputs(tiny_unet)
    run(tiny_unet, inputs, drags=drags)
    assert all(torch.count_nonzero(context[:, 2]) > 0 for _, context in transformer_inputs)


def test_moving_a_drag_changes_the_output_empty_slots_do_not_matter(tiny_unet, inputs) -> None:
    base = run(tiny_unet, inputs)
    moved = inputs["drags"].clone()
    moved[:, -1, 0, 2:] += 0.05
    assert not torch.allclose(run(tiny_unet, inputs, drags=moved), base)
    # whatever image features lie under an empty slot's (zero) coordinates, its token stays zero:
    # changing the image latent changes the output but not the empty tokens
    transformer_inputs, _ = capture_transformer_inputs(tiny_unet)
    run(tiny_unet, inputs, image_latents=inputs["image_latents"] * -2)
    assert all(torch.count_nonzero(context[:, 3:]) == 0 for _, context in transformer_inputs)


@pytest.mark.parametrize(("batch", "frames"), [(1, 1), (1, 14), (3, 4)])
def test_any_batch_and_frame_count(tiny_unet, batch, frames) -> None:
    inputs = make_inputs(batch=batch, frames=frames)
    assert run(tiny_unet, inputs).shape == (batch, frames, 4, 8, 8)


def later_frames_changed(inputs: dict) -> dict:
    """New noisy latents in frames 1.., and drags moved in the middle frames (not the last: see below)."""
    generator = torch.Generator().manual_seed(5)
    sample, drags = inputs["sample"].clone(), inputs["drags"].clone()
    sample[:, 1:] = torch.randn(sample[:, 1:].shape, generator=generator)
    drags[:, 1:-1, :2, 2:] += 0.07  # active drags only: which slots are empty stays the same
    return {"sample": sample, "drags": drags}


def blend_out_temporal_layers(model: UNetDragSpatioTemporalModel) -> None:
    """Make every spatial/temporal blend (diffusers' ``AlphaBlender``) take the spatial path only.

    ``alpha = sigmoid(mix_factor)`` weighs spatial against temporal output; ``mix_factor = +inf``
    gives ``alpha = 1`` exactly, so the temporal resnets and transformers no longer mix frames.
    """
    blenders = [module for module in model.modules() if isinstance(module, AlphaBlender)]
    assert blenders
    with torch.no_grad():
        for blender in blenders:
            blender.mix_factor.fill_(float("inf"))


def test_temporal_layers_let_frame_0_see_later_frames(tiny_unet, inputs) -> None:
    """Frame 0's output is *not* independent of later frames in the whole model: SVD's temporal
    resnets and transformers mix all frames (and every frame's drag encoding carries each drag's
    last-frame position). Only spatial attention is all-to-first; the next test checks that."""
    base, changed = run(tiny_unet, inputs), run(tiny_unet, inputs, **later_frames_changed(inputs))
    assert not torch.allclose(changed[:, 0], base[:, 0])


def test_all_to_first_attention_carries_frame_0_to_later_frames_and_not_back(tiny_unet, inputs) -> None:
    """With the temporal layers blended out, what links frames is spatial attention (and the drags'
    last-frame position, held fixed here): frame 0's output ignores later frames' latents and drags,
    later frames read frame 0, and with plain self-attention they no longer do."""
    blend_out_temporal_layers(tiny_unet)
    base = run(tiny_unet, inputs)
    changed = run(tiny_unet, inputs, **later_frames_changed(inputs))
    torch.testing.assert_close(changed[:, 0], base[:, 0], rtol=0, atol=1e-6)
    assert not torch.allclose(changed[:, 1:], base[:, 1:])

    new_first = inputs["sample"].clone()
    new_first[:, 0] = torch.randn(new_first[:, 0].shape, generator=torch.Generator().manual_seed(6))
    assert not torch.allclose(run(tiny_unet, inputs, sample=new_first)[:, 1:], base[:, 1:])
    tiny_unet.set_all_to_first_attention(False)
    plain = run(tiny_unet, inputs)
    torch.testing.assert_close(run(tiny_unet, inputs, sample=new_first)[:, 1:], plain[:, 1:], rtol=0, atol=1e-6)


def test_bad_inputs_raise_clear_errors(tiny_unet, inputs) -> None:
    with pytest.raises(ValueError, match="drags must have shape"):
        run(tiny_unet, inputs, drags=torch.zeros(2, 5, 6, 4))
    with pytest.raises(ValueError, match="NaN"):
        run(tiny_unet, inputs, drags=torch.full((2, 5, 5, 4), float("nan")))
    with pytest.raises(ValueError, match="image_latents"):
        run(tiny_unet, inputs, image_latents=torch.zeros(2, 4, 4, 4))
    with pytest.raises(ValueError, match="num_drags must be at least 1"):
        UNetDragSpatioTemporalModel(**{**TINY_UNET_CONFIG, "num_drags": 0})


# ---------------------------------------------------------------- training hooks


def test_gradient_checkpointing_gives_the_same_loss_and_gradients(inputs) -> None:
    def loss_and_grads(checkpointing: bool) -> tuple[torch.Tensor, dict]:
        torch.manual_seed(0)
        model = UNetDragSpatioTemporalModel(**{**TINY_UNET_CONFIG, "cond_dropout_prob": 0.0}).train()
        if checkpointing:
            model.enable_gradient_checkpointing()
        loss = model(**inputs).sample.square().mean()
        loss.backward()
        return loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}

    loss_plain, grads_plain = loss_and_grads(False)
    loss_ckpt, grads_ckpt = loss_and_grads(True)
    torch.testing.assert_close(loss_ckpt, loss_plain)
    assert grads_plain.keys() == grads_ckpt.keys()
    assert any(".flow_convs." in k for k in grads_plain) and any(".drag_token_mlps." in k for k in grads_plain)
    for key in grads_plain:
        torch.testing.assert_close(grads_ckpt[key], grads_plain[key], rtol=1e-4, atol=1e-6, msg=key)


def test_drag_token_read_does_not_backpropagate_into_features(inputs) -> None:
    """Drag tokens read detached features: without the modulation path, tokens give features no gradient."""
    model = UNetDragSpatioTemporalModel(**{**TINY_UNET_CONFIG, "cond_dropout_prob": 0.0}).train()
    hidden = torch.randn(10, 32, 8, 8, requires_grad=True)
    block = model.down_blocks[0]
    cond = model.prepare_drag_conditioning(inputs["drags"], latent_size=8)
    tokens = block._drag_tokens(0, hidden, cond, cond.down_blocks[0][0])
    tokens.sum().backward()
    assert hidden.grad is None


def test_drag_dropout_only_in_training() -> None:
    model = UNetDragSpatioTemporalModel(**{**TINY_UNET_CONFIG, "cond_dropout_prob": 0.5})
    drags = make_inputs(batch=64, frames=2)["drags"]
    model.eval()
    assert not model.prepare_drag_conditioning(drags, 8).absent[:, :2].any()
    model.train()
    torch.manual_seed(0)
    absent = model.prepare_drag_conditioning(drags, 8).absent.view(64, 2, 5)[:, 0]
    dropped = absent[:, 0]
    assert 10 < int(dropped.sum()) < 54  # about half of the samples lose all their drags
    assert torch.equal(absent[:, 1], dropped)  # whole samples are dropped, not single drags
