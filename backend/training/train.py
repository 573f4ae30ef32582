"""``puppet-master train``: fine-tune Stable Video Diffusion into Puppet-Master (or continue training one).

Runs under Hugging Face ``accelerate``: ``puppet-master train ...`` for one device, or
``accelerate launch -m backend.training.train ...`` for several GPUs or nodes (same flags).

Recipe (``shared/spec`` section 4): UNet from SVD via ``from_svd_unet`` (drag embedders'
last convs zero-initialised), EDM objective consistent with the sampler (``edm.py``), drag dropout
``--drag-dropout`` for guidance, Adam, gradient clipping, EMA, mixed precision, gradient
checkpointing; data are cached latents and CLIP embeddings (``puppet-master cache-latents``).
Checkpoints ``{model, ema, optimizer, step, args}`` are written to ``<output>/checkpoints/`` and
resumed automatically; the EMA weights are saved as a model folder ``<output>/model`` that
``generate`` and ``serve`` load directly.
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import os
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ..models import UNetDragSpatioTemporalModel
from ..pipeline.export import write_gif
from ..pipeline.pipeline import PuppetMasterPipeline
from .data import CachedClipDataset
from .edm import EDMConfig, edm_loss

logger = logging.getLogger(__name__)
CHECKPOINT_NAME = "last.pt"


# ---------------------------------------------------------------- model and components


def load_base(args: argparse.Namespace) -> tuple[PuppetMasterPipeline, UNetDragSpatioTemporalModel]:
    """The frozen components (VAE, CLIP, scheduler) and the UNet to train.

    ``--base-model``: a saved Puppet-Master pipeline folder (continue training it).
    ``--svd``: an SVD img2vid folder or hub id (its UNet becomes Puppet-Master via ``from_svd_unet``).
    """
    if args.base_model:
        base = PuppetMasterPipeline.from_pretrained(args.base_model)
        unet = base.unet
    elif args.svd:
        from diffusers import UNetSpatioTemporalConditionModel

        svd_unet = UNetSpatioTemporalConditionModel.from_pretrained(args.svd, subfolder="unet")
        unet = UNetDragSpatioTemporalModel.from_svd_unet(svd_unet, num_drags=args.num_drags)
        del svd_unet
        base = PuppetMasterPipeline(unet=unet, **PuppetMasterPipeline.load_svd_components(args.svd))
    else:
        raise ValueError("give --base-model (a Puppet-Master folder) or --svd (an SVD img2vid folder or hub id)")
    unet.register_to_config(cond_dropout_prob=args.drag_dropout)
    return base, unet


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * model``, parameter by parameter."""
    for ema_param, param in zip(ema.parameters(), model.parameters(), strict=True):
        ema_param.lerp_(param.detach().to(ema_param.dtype), 1 - decay)


# ---------------------------------------------------------------- checkpoints and outputs


def save_checkpoint(path: Path, unet, ema, optimizer, step: int, args: argparse.Namespace) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    state = {
        "model": unet.state_dict(),
        "ema": ema.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "args": {key: value for key, value in vars(args).items() if key != "handler"},
    }
    torch.save(state, temporary)
    os.replace(temporary, path)


def load_checkpoint(path: Path, unet, ema, optimizer) -> int:
    state = torch.load(path, map_location="cpu", weights_only=True)
    unet.load_state_dict(state["model"])
    ema.load_state_dict(state["ema"])
    optimizer.load_state_dict(state["optimizer"])
    return int(state["step"])


@torch.no_grad()
def sample_gif(base: PuppetMasterPipeline, ema: UNetDragSpatioTemporalModel, example: dict, path: Path) -> None:
    """Generate from one cached example's conditioning with the EMA weights and write a GIF."""
    pipe = PuppetMasterPipeline(base.vae, base.image_encoder, base.feature_extractor, base.scheduler, ema)
    pipe.set_progress_bar_config(disable=True)
    latent_side = example["cond_latent"].shape[-1]
    side = latent_side * pipe.vae_scale_factor
    frames = pipe(
        None, example["drags"][None].clamp(0, 1), height=side, width=side, num_inference_steps=25,
        image_latents=example["cond_latent"][None], image_embeddings=example["embedding"][None],
        generator=torch.Generator().manual_seed(0),
    ).frames[0]  # fmt: skip
    write_gif(frames, path)


# ---------------------------------------------------------------- the loop


def main(args: argparse.Namespace) -> dict:
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    output = Path(args.output)
    accelerator = Accelerator(
        mixed_precision=args.mixed_precision, gradient_accumulation_steps=args.gradient_accumulation_steps
    )
    set_seed(args.seed)
    base, unet = load_base(args)
    dataset = CachedClipDataset(args.data)
    # the model is trained (and so samples) at the data's latent size; a UNet made from SVD would otherwise keep
    # SVD's sample_size (96 latents = 768 px) and generate at a size it never saw in training
    latent_side = int(dataset[0]["cond_latent"].shape[-1])
    if unet.config.sample_size != latent_side:
        logger.info("sample size %s -> %d latents (the training data's)", unet.config.sample_size, latent_side)
        unet.register_to_config(sample_size=latent_side)
    for frozen in (base.vae, base.image_encoder):
        frozen.requires_grad_(False)
    if args.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    unet.train()
    ema = copy.deepcopy(unet).requires_grad_(False).eval()

    loader = DataLoader(
        dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.num_workers, drop_last=False
    )
    optimizer = torch.optim.Adam(unet.parameters(), lr=args.learning_rate)
    unet, optimizer, loader = accelerator.prepare(unet, optimizer, loader)
    ema.to(accelerator.device)
    if args.sample_every:
        # sample videos decode on the training device; CLIP stays put (samples use cached embeddings)
        base.vae.to(accelerator.device)

    checkpoint = output / "checkpoints" / CHECKPOINT_NAME
    step = 0
    if checkpoint.exists() and not args.no_resume:
        step = load_checkpoint(checkpoint, accelerator.unwrap_model(unet), ema, optimizer)
        logger.info("resumed from %s at step %d", checkpoint, step)

    config = EDMConfig(first_frame_weight=args.first_frame_weight, last_frame_weight=args.last_frame_weight)
    losses: list[float] = []
    epochs = math.ceil((args.max_steps - step) / max(1, len(loader))) + 1
    for _ in range(epochs):
        for batch in loader:
            if step >= args.max_steps:
                break
            with accelerator.accumulate(unet):
                loss = edm_loss(
                    unet, batch["latents"], batch["cond_latent"], batch["embedding"], batch["drags"], config
                )
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(unet.parameters(), args.grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            if not accelerator.sync_gradients:
                continue
            step += 1
            update_ema(ema, accelerator.unwrap_model(unet), args.ema_decay)
            losses.append(accelerator.gather(loss.detach()).mean().item())
            if step % args.log_every == 0 or step == args.max_steps:
                recent = losses[-args.log_every :]
                logger.info("step %d/%d  loss %.5f", step, args.max_steps, sum(recent) / len(recent))
            if accelerator.is_main_process and step % args.checkpoint_every == 0:
                save_checkpoint(checkpoint, accelerator.unwrap_model(unet), ema, optimizer, step, args)
            if accelerator.is_main_process and args.sample_every and step % args.sample_every == 0:
                sample_gif(base, ema, dataset[0], output / "samples" / f"step_{step:06d}.gif")
                ema.train(False)

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_checkpoint(checkpoint, accelerator.unwrap_model(unet), ema, optimizer, step, args)
        model = PuppetMasterPipeline(base.vae, base.image_encoder, base.feature_extractor, base.scheduler, ema)
        model.unet.register_to_config(cond_dropout_prob=args.drag_dropout)
        model.save_pretrained(output / "model")
        logger.info("saved the EMA model to %s", output / "model")
    return {"steps": step, "losses": losses, "model": str(output / "model")}


# ---------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_argument_group("model")
    source.add_argument("--base-model", help="a Puppet-Master pipeline folder to continue training")
    source.add_argument("--svd", help="SVD img2vid folder or hub id to start from (its UNet gains the drag branch)")
    source.add_argument("--num-drags", type=int, default=5, help="drag slots (with --svd)")
    parser.add_argument("--data", required=True, help="folder of cached examples (puppet-master cache-latents)")
    parser.add_argument("--output", required=True, help="folder for checkpoints, samples and the final model")
    parser.add_argument("--max-steps", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--gradient-accumulation-steps", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=1e-5)
    parser.add_argument("--grad-clip", type=float, default=1.0)
    parser.add_argument("--ema-decay", type=float, default=0.9999)
    parser.add_argument("--drag-dropout", type=float, default=0.1, help="probability of training without drags")
    parser.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"], default="no")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--first-frame-weight", type=float, default=1.0, help="loss weight ramp: first frame")
    parser.add_argument("--last-frame-weight", type=float, default=1.0, help="loss weight ramp: last frame")
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--checkpoint-every", type=int, default=500)
    parser.add_argument("--sample-every", type=int, default=0, help="write a sample GIF every N steps (0 = never)")
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="fine-tune Puppet-Master on cached clips (accelerate)")
    add_arguments(parser)
    parser.set_defaults(handler=lambda args: (main(args), 0)[1])


if __name__ == "__main__":  # accelerate launch -m backend.training.train ...
    cli = argparse.ArgumentParser(description=__doc__)
    add_arguments(cli)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    main(cli.parse_args())
