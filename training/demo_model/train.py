"""Train the embedded demo model: a small SD-format latent diffusion model on procedural scenes.

    python -m training.demo_model.train --out server/demo_model/weights
    python -m training.demo_model.train --out /tmp/smoke --smoke     # seconds, end to end
    python -m training.demo_model.train --resume DIR --out OUT --unet-minutes 60     # more UNet steps
    python -m training.demo_model.train --resume DIR --continue-vae --vae-minutes 20 --unet-steps 0 --out OUT

Stages (all seeded): render a captioned scene set in RAM; train the VAE on 64x64 crops (it is
convolutional, so it works at 128x128); encode the set to latents once and set the VAE's
scaling factor to 1/std; train the UNet and the text encoder jointly with SD's epsilon loss and
noise schedule, dropping 10% of captions for classifier-free guidance; save a diffusers
StableDiffusionPipeline folder with fp16 safetensors.

The learning rate is constant after a short warm-up and the saved UNet/text weights are an EMA,
so a run stopped by `--unet-minutes` equals a run of `--unet-steps <steps it printed>`.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from server.engine.model_defaults import DEFAULTS_FILE

NATIVE_SIZE = 128
SCHEDULE = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)
# Written into the folder as studio_defaults.json. Guidance well below SD's 7.5: at 7.5 this small
# model's prompt-vs-unconditional gap, amplified at low noise, wipes out a sketch even at strength
# 0.3 (layout 0.10), while at 2 the layout holds (0.88) and prompts are followed as well or better.
RECOMMENDED_SETTINGS = {"cfg_scale": 2.0}


def build_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(16, 32, 64, 64), layers_per_block=1, latent_channels=4,
        norm_num_groups=8, sample_size=NATIVE_SIZE,
    )


def build_text_encoder(vocab_size: int, max_length: int):
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=256, num_attention_heads=4,
        num_hidden_layers=3, max_position_embeddings=max_length, bos_token_id=0, eos_token_id=1, pad_token_id=1,
    ))


def build_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=NATIVE_SIZE // 8, in_channels=4, out_channels=4,
        block_out_channels=(32, 64, 128), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=64, attention_head_dim=4, norm_num_groups=32,
    )


def build_scheduler():
    from diffusers import LMSDiscreteScheduler

    return LMSDiscreteScheduler(**SCHEDULE, steps_offset=1)


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _to_tensor(images_u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images_u8).permute(0, 3, 1, 2).float().div(127.5).sub(1)


def warm_cosine_rate(step: int, steps: int, peak: float, warmup: int, floor: float) -> float:
    """Every stage's learning rate: a linear warm-up over `warmup` steps, then a cosine from
    `peak` down to `floor` of it at step `steps` (floor 1.0: constant after the warm-up)."""
    decay = 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps))
    return peak * min(1.0, step / warmup) * (floor + (1 - floor) * decay)


def train_vae(vae, images: np.ndarray, steps: int, minutes: float, batch: int, seed: int) -> int:
    gen = np.random.default_rng(seed)
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-3, weight_decay=0.0)
    vae.train()
    started, crop, step = time.time(), 64, 0
    for step in range(1, steps + 1):
        idx = gen.integers(0, len(images), batch)
        y, x = gen.integers(0, NATIVE_SIZE - crop + 1, 2)
        x_in = _to_tensor(images[idx, y : y + crop, x : x + crop])
        for g in opt.param_groups:
            g["lr"] = warm_cosine_rate(step, steps, peak=1e-3, warmup=50, floor=0.1)
        posterior = vae.encode(x_in).latent_dist
        recon = vae.decode(posterior.sample()).sample
        kl = posterior.kl().mean() / posterior.mean[0].numel()
        loss = F.l1_loss(recon, x_in) + F.mse_loss(recon, x_in) + 1e-4 * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        if step % 50 == 0 or step == 1 or step == steps:
            _log(f"vae step {step}/{steps} loss {loss.item():.4f} kl/elem {kl.item():.3f} ({time.time() - started:.0f}s)")
        if minutes and time.time() - started > minutes * 60:
            _log(f"vae: time budget reached at step {step}")
            break
    vae.eval()
    return step


def finetune_decoder(vae, images: np.ndarray, steps: int, minutes: float, batch: int, seed: int) -> int:
    """Sharpen the decoder with the encoder frozen (as SD's ft-MSE VAE did): the latent space,
    and so the UNet trained on it, stays valid. Latents are posterior means, as the UNet saw."""
    gen = np.random.default_rng(seed + 2)
    vae.encoder.requires_grad_(False)
    vae.quant_conv.requires_grad_(False)
    params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    opt = torch.optim.AdamW(params, lr=5e-4, weight_decay=0.0)
    started, crop, step = time.time(), 64, 0
    vae.decoder.train()
    for step in range(1, steps + 1):
        idx = gen.integers(0, len(images), batch)
        y, x = gen.integers(0, (NATIVE_SIZE - crop) // 8 + 1, 2) * 8  # latent-aligned crops
        x_in = _to_tensor(images[idx, y : y + crop, x : x + crop])
        for g in opt.param_groups:
            g["lr"] = warm_cosine_rate(step, steps, peak=5e-4, warmup=20, floor=0.1)
        with torch.no_grad():
            z = vae.encode(x_in).latent_dist.mean
        recon = vae.decode(z).sample
        loss = F.l1_loss(recon, x_in) + F.mse_loss(recon, x_in)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % 50 == 0 or step == 1 or step == steps:
            _log(f"decoder step {step}/{steps} loss {loss.item():.4f} ({time.time() - started:.0f}s)")
        if minutes and time.time() - started > minutes * 60:
            _log(f"decoder: time budget reached at step {step}")
            break
    vae.requires_grad_(True)
    vae.eval()
    return step


def finetune_decoder_of(folder: Path, out: Path, args) -> None:
    """Decoder fine-tune of an existing model folder (its UNet/text encoder untouched)."""
    import shutil

    from diffusers import AutoencoderKL

    from .scenes import dataset

    vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", torch_dtype=torch.float32)
    images, captions = dataset(args.images, args.seed, NATIVE_SIZE)
    t = time.time()
    steps = finetune_decoder(vae, images, args.decoder_steps, args.decoder_minutes, args.vae_batch, args.seed)
    meta = json.loads((Path(folder) / "training.json").read_text()) if (Path(folder) / "training.json").exists() else {}
    if Path(out).resolve() != Path(folder).resolve():
        if Path(out).exists():
            shutil.rmtree(out)
        shutil.copytree(folder, out)
    tmp = Path(out) / "vae.partial"
    vae.to(torch.float16).save_pretrained(tmp, safe_serialization=True)
    shutil.rmtree(Path(out) / "vae")
    tmp.rename(Path(out) / "vae")
    meta["decoder_steps"] = steps
    meta.setdefault("timings", {})["decoder_s"] = round(time.time() - t, 1)
    (Path(out) / "training.json").write_text(json.dumps(meta, indent=2) + "\n")
    calibrate_previews(out, images, captions=captions)  # the decoder changed, so the preview map must follow
    _log(f"decoder fine-tuned ({steps} steps) into {out}")


@torch.no_grad()
def encode_all(vae, images: np.ndarray, batch: int = 64) -> torch.Tensor:
    out = []
    for i in range(0, len(images), batch):
        out.append(vae.encode(_to_tensor(images[i : i + batch])).latent_dist.mean)
    return torch.cat(out)


@torch.no_grad()
def _ema_update(ema_params, params, decay):
    for e, p in zip(ema_params, params):
        e.mul_(decay).add_(p.detach(), alpha=1 - decay)


UNET_PEAK_LR = 6e-4


def train_unet(unet, text_encoder, latents, token_ids, empty_ids, steps, minutes, batch, seed,
               on_checkpoint=None, checkpoint_minutes=10.0, min_snr_gamma=0.0, lr_floor=1.0):
    from diffusers import DDPMScheduler

    noise_sched = DDPMScheduler(**SCHEDULE)
    alphas = noise_sched.alphas_cumprod
    gen = torch.Generator().manual_seed(seed)
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=UNET_PEAK_LR, weight_decay=1e-2)
    ema_unet, ema_text = copy.deepcopy(unet).eval(), copy.deepcopy(text_encoder).eval()
    ema_params = list(ema_unet.parameters()) + list(ema_text.parameters())
    unet.train(), text_encoder.train()
    started, last_ckpt, running, step = time.time(), time.time(), None, 0
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(latents), (batch,), generator=gen)
        x0 = latents[idx]
        ids = token_ids[idx].clone()
        drop = torch.rand(batch, generator=gen) < 0.1  # classifier-free guidance: empty prompt
        ids[drop] = empty_ids
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, 1000, (batch,), generator=gen)
        a = alphas[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
        for g in opt.param_groups:
            # lr_floor 1.0 (the default) is the constant rate every run before --unet-lr-floor
            # existed used, so their recorded commands still reproduce.
            g["lr"] = warm_cosine_rate(step, steps, peak=UNET_PEAK_LR, warmup=100, floor=lr_floor)
        cond = text_encoder(ids)[0]
        pred = unet(x_t, t, encoder_hidden_states=cond).sample
        per_sample = F.mse_loss(pred, noise, reduction="none").mean((1, 2, 3))
        if min_snr_gamma:
            # Min-SNR-gamma weighting (Hang et al. 2023): for epsilon prediction the weight is
            # min(SNR, gamma) / SNR, which stops the many low-noise steps dominating the gradient
            # and converges several times faster on global structure (what prompts control here).
            snr = alphas[t] / (1 - alphas[t])
            per_sample = per_sample * snr.clamp(max=min_snr_gamma) / snr
        loss = per_sample.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        _ema_update(ema_params, params, min(0.999, (1 + step) / (10 + step)))
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 50 == 0 or step == 1 or step == steps:
            el = time.time() - started
            _log(f"unet step {step}/{steps} loss {loss.item():.4f} (avg {running:.4f}) {el / step:.2f}s/step ({el:.0f}s)")
        if on_checkpoint and time.time() - last_ckpt > checkpoint_minutes * 60:
            on_checkpoint(ema_unet, ema_text, step)
            last_ckpt = time.time()
        if minutes and time.time() - started > minutes * 60:
            _log(f"unet: time budget reached at step {step}")
            break
    return ema_unet, ema_text, step


def unet_steps_so_far(meta: dict | None) -> int:
    """UNet steps over a chain of resumed runs (each training.json nests the one it resumed)."""
    total = 0
    while meta:
        total += meta.get("unet_steps") or 0
        meta = meta.get("resumed_from")
    return total


@torch.no_grad()
def sampled_latents(folder: Path, captions: list[str], steps: int = 20) -> torch.Tensor:
    """Final latents of txt2img runs of the folder's model (at its recommended settings), one
    per caption: what the preview map will mostly be shown."""
    from server.engine import GenerationRequest, generate, load_model

    model = load_model(folder, "cpu")
    runs = [generate(model, GenerationRequest.from_payload(
        {"prompt": caption, "steps": steps, "seed": 10_000 + i, "preview": "off"}, defaults=model.defaults), None)
        for i, caption in enumerate(captions)]
    return torch.cat([run.latents.float() for run in runs])


def calibrate_previews(folder: Path, images: np.ndarray, count: int = 48, captions: list[str] | None = None) -> None:
    """Fit the preview maps (the 4x3 latent->RGB map and the patch decoder) on scenes like the ones
    the model makes, and on latents the model itself sampled for `captions`, and ship them in the
    folder (generic colour fields fit this small VAE's latents poorly, and a map fitted on encoded
    scenes alone misses the UNet's outputs by about 0.36 of full scale)."""
    from diffusers import AutoencoderKL

    from server.engine.previews import (calibrate, fit_latent_rgb_to, fit_patch_decoder_to, save_shipped_latent_rgb,
                            save_shipped_patch_decoder)

    vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", torch_dtype=torch.float32).eval()  # as CPUs load it
    sampled = sampled_latents(folder, captions[:count]) if captions else None
    calibration = calibrate(vae, NATIVE_SIZE, "cpu", torch.float32, _to_tensor(images[:count]), sampled)
    save_shipped_latent_rgb(folder, vae, fit_latent_rgb_to(calibration))
    save_shipped_patch_decoder(folder, vae, fit_patch_decoder_to(calibration))
    _log(f"preview maps fitted on {min(count, len(images))} scenes and "
         f"{0 if sampled is None else len(sampled)} sampled latents into {folder}")


def save_folder(out: Path, tokenizer, text_encoder, vae, unet, meta: dict) -> None:
    from diffusers import StableDiffusionPipeline

    out = Path(out)
    parts = {name: copy.deepcopy(m).to(torch.float16).eval() for name, m in
             (("text_encoder", text_encoder), ("vae", vae), ("unet", unet))}
    pipe = StableDiffusionPipeline(
        vae=parts["vae"], text_encoder=parts["text_encoder"], tokenizer=tokenizer, unet=parts["unet"],
        scheduler=build_scheduler(), safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    tmp = out.with_name(out.name + ".partial")
    pipe.save_pretrained(tmp, safe_serialization=True)
    (tmp / "training.json").write_text(json.dumps(meta, indent=2) + "\n")
    (tmp / DEFAULTS_FILE).write_text(json.dumps(RECOMMENDED_SETTINGS, indent=2) + "\n")
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    _log(f"saved {out} ({size / 1e6:.1f} MB)")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, help="the model folder to write (required unless calibrating)")
    p.add_argument("--images", type=int, default=12000)
    p.add_argument("--vae-steps", type=int, default=1000)
    p.add_argument("--vae-minutes", type=float, default=0.0, help="stop the VAE stage early after this long")
    p.add_argument("--unet-steps", type=int, default=6000)
    p.add_argument("--unet-minutes", type=float, default=0.0, help="stop the UNet stage early after this long")
    p.add_argument("--decoder-steps", type=int, default=0, help="decoder-only fine-tune steps after the UNet")
    p.add_argument("--decoder-minutes", type=float, default=0.0)
    p.add_argument("--finetune-decoder-of", type=Path, help="only fine-tune the decoder of this model folder")
    p.add_argument("--resume", type=Path,
                   help="continue the UNet/text stage from this model folder (VAE kept unless --continue-vae)")
    p.add_argument("--continue-vae", action="store_true",
                   help="with --resume: train the folder's VAE further first (--vae-steps/--vae-minutes); the "
                        "latents are re-encoded, so give a new --latents-cache, and the UNet then adapts to them")
    p.add_argument("--latents-cache", type=Path, help="reuse (or write) the encoded latents here")
    p.add_argument("--vae-batch", type=int, default=16)
    p.add_argument("--unet-batch", type=int, default=48)
    # Off by default. Measured here: 3.6k more steps with gamma 5 raised prompt adherence from 27%
    # to 41.5%, but layout at strength 0.3 fell from 0.83 to 0.16, and 770 plain-MSE steps after
    # it (48%) did not bring it back, so the cause (this weighting, or a now strongly conditioned
    # model pushed off its data by cfg 7.5 at low noise) is not settled.
    p.add_argument("--min-snr-gamma", type=float, default=0.0,
                   help="Min-SNR loss weighting (e.g. 5); 0 (default) for plain epsilon MSE")
    # A run that ends on a low rate settles into the minimum the constant rate keeps bouncing
    # around; it needs --unet-steps set to the steps the run will really take.
    p.add_argument("--unet-lr-floor", type=float, default=1.0,
                   help="UNet learning rate at the last step, as a fraction of the peak (cosine decay); 1.0 (default) keeps it constant")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--calibrate-previews-of", type=Path, help="only fit and ship the preview maps of this folder")
    p.add_argument("--smoke", action="store_true", help="a few steps of every stage (for tests)")
    args = p.parse_args(argv)
    if args.out is None and not args.calibrate_previews_of:
        p.error("--out is required")
    if args.continue_vae and not args.resume:
        p.error("--continue-vae trains a --resume folder's VAE further; name the folder with --resume")
    if args.continue_vae and args.latents_cache and args.latents_cache.exists():
        p.error(f"--continue-vae re-encodes the scenes; {args.latents_cache} holds the old VAE's latents, "
                "so name a new --latents-cache")
    if args.smoke:
        args.images, args.vae_steps, args.unet_steps, args.vae_batch, args.unet_batch = 16, 2, 2, 2, 4
        args.decoder_steps = 1
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.calibrate_previews_of:
        from .scenes import dataset

        images, captions = dataset(48, args.seed + 7, NATIVE_SIZE)
        return calibrate_previews(args.calibrate_previews_of, images, captions=captions)
    if args.finetune_decoder_of:
        return finetune_decoder_of(args.finetune_decoder_of, args.out, args)

    from .scenes import dataset
    from .tokenizer import build_tokenizer

    t0 = time.time()
    timings = {}
    tokenizer = build_tokenizer()
    images, captions = dataset(args.images, args.seed, NATIVE_SIZE)
    timings["render_s"] = round(time.time() - t0, 1)
    _log(f"rendered {len(images)} scenes in {timings['render_s']}s; e.g. {captions[:3]}")

    torch.manual_seed(args.seed)
    if args.resume:
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer

        # The text encoder learned the resumed folder's token ids: keep its tokenizer.
        tokenizer = CLIPTokenizer.from_pretrained(args.resume, subfolder="tokenizer")

        vae = AutoencoderKL.from_pretrained(args.resume, subfolder="vae", torch_dtype=torch.float32).eval()
        previous = json.loads((args.resume / "training.json").read_text())
        vae_steps = previous.get("vae_steps")
        std = 1.0 / vae.config.scaling_factor
        if args.continue_vae:
            # Fresh crops, not a replay of the steps the VAE already took.
            t = time.time()
            vae_steps += train_vae(vae, images, args.vae_steps, args.vae_minutes, args.vae_batch, args.seed + vae_steps)
            timings["vae_s"] = round(time.time() - t, 1)
    else:
        previous = None
        vae = build_vae()
        t = time.time()
        vae_steps = train_vae(vae, images, args.vae_steps, args.vae_minutes, args.vae_batch, args.seed)
        timings["vae_s"] = round(time.time() - t, 1)

    t = time.time()
    if args.latents_cache and args.latents_cache.exists():
        latents = torch.load(args.latents_cache)
    else:
        latents = encode_all(vae, images)
        if args.latents_cache:
            torch.save(latents, args.latents_cache)
    if not args.resume or args.continue_vae:
        std = latents.std().item()
        vae.register_to_config(scaling_factor=1.0 / std)
    latents = latents / std
    timings["encode_s"] = round(time.time() - t, 1)
    _log(f"encoded {len(latents)} latents in {timings['encode_s']}s; std {std:.4f} -> scaling_factor {1 / std:.4f}; "
         f"per-channel mean {latents.mean((0, 2, 3)).tolist()}")

    enc = tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt")
    empty = tokenizer([""], padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt")
    torch.manual_seed(args.seed + 1)
    if args.resume:
        text_encoder = CLIPTextModel.from_pretrained(args.resume, subfolder="text_encoder", torch_dtype=torch.float32)
        unet = UNet2DConditionModel.from_pretrained(args.resume, subfolder="unet", torch_dtype=torch.float32)
        # Fresh batches, not a replay of an earlier run's: the batch seed moves on by every
        # UNet step taken so far (the dataset, and so a latents cache, keeps --seed).
        args.seed += 1000 + unet_steps_so_far(previous)
    else:
        text_encoder = build_text_encoder(len(tokenizer), tokenizer.model_max_length)
        unet = build_unet()
    _log(f"params: unet {sum(p.numel() for p in unet.parameters()) / 1e6:.2f}M, "
         f"vae {sum(p.numel() for p in vae.parameters()) / 1e6:.2f}M, "
         f"text {sum(p.numel() for p in text_encoder.parameters()) / 1e6:.2f}M")

    decoder_steps = 0

    def meta(unet_steps):
        return {"resumed_from": previous, "seed": args.seed, "images": args.images, "vae_steps": vae_steps, "unet_steps": unet_steps,
                "decoder_steps": decoder_steps, "min_snr_gamma": args.min_snr_gamma, "unet_lr_floor": args.unet_lr_floor, "vae_batch": args.vae_batch, "unet_batch": args.unet_batch, "latent_std": std,
                "timings": timings, "command": "python -m training.demo_model.train " + " ".join(argv or [])}

    def checkpoint(ema_unet, ema_text, step):
        save_folder(args.out, tokenizer, ema_text, vae, ema_unet, meta(step))

    t = time.time()
    ema_unet, ema_text, unet_steps = train_unet(
        unet, text_encoder, latents, enc.input_ids, empty.input_ids[0], args.unet_steps, args.unet_minutes,
        args.unet_batch, args.seed, on_checkpoint=None if args.smoke else checkpoint,
        min_snr_gamma=args.min_snr_gamma, lr_floor=args.unet_lr_floor,
    )
    timings["unet_s"] = round(time.time() - t, 1)
    if args.decoder_steps:
        t = time.time()
        decoder_steps = finetune_decoder(vae, images, args.decoder_steps, args.decoder_minutes, args.vae_batch, args.seed)
        timings["decoder_s"] = round(time.time() - t, 1)
    timings["total_s"] = round(time.time() - t0, 1)
    save_folder(args.out, tokenizer, ema_text, vae, ema_unet, meta(unet_steps))
    calibrate_previews(args.out, images, count=2 if args.smoke else 48, captions=captions)
    _log(f"done in {timings['total_s']}s: {timings}")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
