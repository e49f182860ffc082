"""LoRA files for the tests, built here on random weights (never downloaded), in both key formats.

`random_lora(components)` draws one LoRA for a set of components (the tiny SD 1.x or SDXL model,
or a family builder's): a rank-r down/up pair for every attention projection, feed-forward and
proj_in/proj_out layer of the UNet's transformer blocks, and every attention and MLP layer of
each text encoder. Both halves are random (peft initialises `up` to zero, which would make a
LoRA that changes nothing).

It is then written the two ways LoRAs come in the wild:
- `write_diffusers_lora`: through the pipeline class's own `save_lora_weights`, which writes
  peft's names (`unet.<module>.lora_A.weight`, `text_encoder.<module>.lora_B.weight`,
  `text_encoder_2.…`) and the adapter config (rank, alpha) in the header, as diffusers and its
  training scripts do;
- `write_kohya_lora`: Kohya/A1111 names, `lora_unet_<module with _ for .>`, `lora_te_…` (SD 1.x/2.x)
  or `lora_te1_…`/`lora_te2_…` (SDXL), each with `.lora_down.weight`, `.lora_up.weight` and
  `.alpha`: diffusers' `_convert_non_diffusers_lora_to_diffusers` in reverse. With `sgm=True` the
  UNet's blocks take the original (SGM) UNet's numbers, `lora_unet_input_blocks_4_1_…`, as Kohya's
  SDXL LoRAs have them.
Text encoder layers are named under `text_model.`, as files in the wild name them.
The same draw in both formats has the same alpha, so both give the same pixels.
"""
from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2", "proj_in", "proj_out")
TEXT_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
TEXT_ENCODERS = ("text_encoder", "text_encoder_2")


@dataclass
class RandomLora:
    """component -> module path -> (down [r, in(, 1, 1)], up [out, r(, 1, 1)])."""

    layers: dict[str, dict[str, tuple[torch.Tensor, torch.Tensor]]]
    rank: int
    alpha: float
    layers_per_block: int = 1  # the UNet's, for SGM block numbers

    @property
    def sdxl(self) -> bool:
        return "text_encoder_2" in self.layers


def _targets(component: str, module: torch.nn.Module):
    names = UNET_TARGETS if component == "unet" else TEXT_TARGETS
    for name, sub in module.named_modules():
        if component == "unet" and ".attentions." not in f".{name}":
            continue
        if isinstance(sub, (torch.nn.Linear, torch.nn.Conv2d)) and any(name.endswith("." + t) for t in names):
            yield name, sub


def random_lora(components: dict, seed: int = 0, rank: int = 4, alpha: float = 2.0, scale: float = 0.3,
                parts=("unet",) + TEXT_ENCODERS, zeros: bool = False) -> RandomLora:
    """A LoRA with random down and up weights for `components`' UNet and text encoder(s).

    `scale` sets how far it moves each layer's output: a LoRA here changes the tiny model's
    pixels clearly without making them saturate. `zeros` skips the random draws, for files that
    only need the right names and shapes (a full-size layout built on the `meta` device)."""
    generator = torch.Generator().manual_seed(seed)
    layers: dict[str, dict] = {}
    for component in parts:
        module = components.get(component)
        if module is None:
            continue
        layers[component] = {}
        for name, sub in _targets(component, module):
            if component != "unet" and not hasattr(module, "text_model"):
                # Recent transformers flatten CLIPTextModel; files in the wild (and diffusers'
                # loader) name its layers under `text_model.`, as older versions did.
                name = "text_model." + name
            if isinstance(sub, torch.nn.Conv2d):
                assert sub.kernel_size == (1, 1), name  # proj_in/proj_out of SD 1.x are 1x1 convolutions
                fan_in, fan_out, tail = sub.in_channels, sub.out_channels, (1, 1)
            else:
                fan_in, fan_out, tail = sub.in_features, sub.out_features, ()
            if zeros:
                down, up = torch.zeros((rank, fan_in, *tail)), torch.zeros((fan_out, rank, *tail))
            else:
                down = torch.randn((rank, fan_in, *tail), generator=generator) / fan_in ** 0.5
                up = torch.randn((fan_out, rank, *tail), generator=generator) * scale / rank ** 0.5
            layers[component][name] = (down, up)
    unet = components.get("unet")
    return RandomLora(layers, rank, alpha, unet.config.layers_per_block if unet is not None else 1)


def write_diffusers_lora(lora: RandomLora, path: Path) -> Path:
    """The LoRA as diffusers writes it (peft names, adapter config in the header)."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    path = Path(path)
    layers = {component: {f"{name}.lora_{half}.weight": tensor.contiguous()
                          for name, (down, up) in modules.items() for half, tensor in (("A", down), ("B", up))}
              for component, modules in lora.layers.items()}
    metadata = {component: _adapter_config(lora, component) for component in lora.layers}
    kwargs = {"unet_lora_layers": layers.get("unet"), "text_encoder_lora_layers": layers.get("text_encoder"),
              "unet_lora_adapter_metadata": metadata.get("unet"),
              "text_encoder_lora_adapter_metadata": metadata.get("text_encoder")}
    if lora.sdxl:
        pipeline = StableDiffusionXLPipeline
        kwargs.update(text_encoder_2_lora_layers=layers.get("text_encoder_2"),
                      text_encoder_2_lora_adapter_metadata=metadata.get("text_encoder_2"))
    else:
        pipeline = StableDiffusionPipeline
    path.parent.mkdir(parents=True, exist_ok=True)
    pipeline.save_lora_weights(str(path.parent), weight_name=path.name, **kwargs)
    return path


def _adapter_config(lora: RandomLora, component: str) -> dict:
    """What diffusers' training scripts save beside the weights: peft's LoraConfig, as a dict,
    naming its targets by their last part as those scripts do (`["to_k", "to_q", ...]`)."""
    from peft import LoraConfig

    targets = sorted(UNET_TARGETS if component == "unet" else TEXT_TARGETS)
    config = LoraConfig(r=lora.rank, lora_alpha=lora.alpha, target_modules=targets, init_lora_weights="gaussian")
    # peft keeps the targets as a set; sorted, the file's bytes are the same on every run.
    return {k: sorted(v) if isinstance(v, set) else v for k, v in config.to_dict().items()}


def kohya_name(component: str, module: str, sdxl: bool, sgm_layers_per_block: int | None = None) -> str:
    """`down_blocks.0.attentions.0.proj_in` -> `lora_unet_down_blocks_0_attentions_0_proj_in`, or with
    `sgm_layers_per_block` the original (SGM) UNet's block numbers, as Kohya names SDXL's:
    `lora_unet_input_blocks_4_1_proj_in`."""
    prefix = {"unet": "lora_unet_", "text_encoder": "lora_te1_" if sdxl else "lora_te_",
              "text_encoder_2": "lora_te2_"}[component]
    if component == "unet" and sgm_layers_per_block is not None:
        module = sgm_module(module, sgm_layers_per_block)
    return prefix + module.replace(".", "_")


def sgm_module(module: str, layers_per_block: int) -> str:
    """A diffusers UNet attention module's name in the original UNet (diffusers'
    `_maybe_map_sgm_blocks_to_diffusers` in reverse): an SGM down block holds its resnets and a
    downsampler, an up block one resnet more than a down block."""
    per_block = layers_per_block + 1
    match = re.match(r"(down_blocks|up_blocks)\.(\d+)\.attentions\.(\d+)\.(.*)", module)
    if match:
        kind, block, layer, rest = match.group(1), int(match.group(2)), int(match.group(3)), match.group(4)
        if kind == "down_blocks":
            return f"input_blocks.{1 + block * per_block + layer}.1.{rest}"
        return f"output_blocks.{block * per_block + layer}.1.{rest}"
    return re.sub(r"^mid_block\.attentions\.0\.", "middle_block.1.", module)


def write_kohya_lora(lora: RandomLora, path: Path, metadata: dict | None = None, sgm: bool = False) -> Path:
    """The LoRA as Kohya's sd-scripts (and A1111, ComfyUI) write it; `sgm` names the UNet's blocks
    as the original UNet does (Kohya's SDXL LoRAs)."""
    tensors = {}
    for component, modules in lora.layers.items():
        for name, (down, up) in modules.items():
            key = kohya_name(component, name, lora.sdxl, lora.layers_per_block if sgm else None)
            tensors[f"{key}.lora_down.weight"] = down.contiguous()
            tensors[f"{key}.lora_up.weight"] = up.contiguous()
            tensors[f"{key}.alpha"] = torch.tensor(float(lora.alpha))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"ss_network_module": "networks.lora", "ss_network_dim": str(lora.rank),
                                            "ss_network_alpha": str(lora.alpha), **(metadata or {})})
    return path


def write_both(components: dict, folder: Path, stem: str, seed: int = 0, **kwargs) -> tuple[Path, Path]:
    """One random LoRA written as `<stem>-diffusers.safetensors` and `<stem>-kohya.safetensors`."""
    lora = random_lora(components, seed=seed, **kwargs)
    folder = Path(folder)
    return (write_diffusers_lora(lora, folder / f"{stem}-diffusers.safetensors"),
            write_kohya_lora(lora, folder / f"{stem}-kohya.safetensors"))


if __name__ == "__main__":  # a quick look at what the files hold
    from safetensors import safe_open

    from tests.tiny_model import build_tiny_components, build_tiny_xl_components

    with tempfile.TemporaryDirectory() as tmp:
        for label, build in (("sd1", build_tiny_components), ("sdxl", build_tiny_xl_components)):
            for path in write_both(build(), Path(tmp), label):
                with safe_open(str(path), "pt") as f:
                    keys = sorted(f.keys())
                print(path.name, len(keys), keys[:3])
