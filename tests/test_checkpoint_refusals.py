"""Checkpoints the studio must refuse, each with a message that says what was found, and a
pickle that would run code: refused, and nothing in it runs."""
from __future__ import annotations

import os

import pytest
import torch
from safetensors.torch import save_file

from server.engine import ModelLoadError, load_model
from server.engine.loading import summarize_model

UNET_IN = "model.diffusion_model.input_blocks.0.0.weight"


class RunsCode:
    """What a malicious .ckpt holds: unpickling it calls os.system."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def refusal(path) -> str:
    with pytest.raises(ModelLoadError) as caught:
        load_model(path, "cpu")
    return str(caught.value)


def test_a_ckpt_whose_pickle_would_run_code_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "the-pickle-ran"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {UNET_IN: torch.zeros(320, 4, 3, 3), "payload": RunsCode(marker)}}, path)

    message = refusal(path)

    assert not marker.exists()
    assert "evil.ckpt was refused" in message
    assert "system" in message  # names what the pickle asked for
    assert "Nothing in it was run" in message and ".safetensors" in message


def test_the_same_check_guards_reading_a_ckpt_without_loading_weights(tmp_path):
    marker = tmp_path / "the-pickle-ran"
    path = tmp_path / "evil.ckpt"
    torch.save({"payload": RunsCode(marker)}, path)
    with pytest.raises(ModelLoadError, match="refused"):
        summarize_model(path)
    assert not marker.exists()


@pytest.mark.parametrize("keys, found", [
    ({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": (4, 320),
      "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": (320, 4)}, "is a LoRA (2 tensors)"),
    ({"model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight": (4, 4)}, "Stable Diffusion 3"),
    ({"model.diffusion_model.double_blocks.0.img_attn.qkv.weight": (4, 4)}, "Flux"),
    ({"first_stage_model.encoder.conv_in.weight": (128, 3, 3, 3)}, "a VAE alone"),
    ({"something.else": (2,)}, "none of its 1 keys is a Stable Diffusion UNet's"),
    ({UNET_IN: (320, 4, 3, 3), "conditioner.embedders.0.model.token_embedding.weight": (49408, 1280)},
     "is an SDXL refiner"),
    ({UNET_IN: (320, 8, 3, 3), "cond_stage_model.transformer.text_model.x": (1,)}, "8 input channels"),
    ({UNET_IN: (320, 4, 3, 3)}, "no text encoder"),
])
def test_a_checkpoint_of_another_kind_is_refused_naming_what_it_is(tmp_path, keys, found):
    path = tmp_path / "model.safetensors"
    save_file({k: torch.zeros(shape) for k, shape in keys.items()}, str(path))
    assert found in refusal(path)


def test_files_that_are_not_checkpoints_get_a_message_saying_so(tmp_path):
    broken = tmp_path / "cut-short.safetensors"
    broken.write_bytes(b"\x40\x00\x00\x00\x00\x00\x00\x00{not json")
    assert "not a readable .safetensors file" in refusal(broken)

    other = tmp_path / "model.bin"
    other.write_bytes(b"\0" * 16)
    assert "not a checkpoint file" in refusal(other)

    garbage = tmp_path / "model.ckpt"
    garbage.write_bytes(b"this is not a pickle")
    assert "not a readable checkpoint" in refusal(garbage)


def test_a_yaml_beside_the_checkpoint_that_is_not_a_model_config_is_named(tmp_path):
    path = tmp_path / "sd2.safetensors"
    save_file({UNET_IN: torch.zeros(320, 4, 3, 3), "cond_stage_model.model.token_embedding.weight": torch.zeros(8, 4)},
              str(path))
    (tmp_path / "sd2.yaml").write_text("just: a list\n")
    assert "sd2.yaml beside the checkpoint is not an original model config" in refusal(path)
