"""Saved intermediates: each step's frame of an output, as PNG files beside the outputs.

`outputs/intermediates/<output name without .png>/` holds `init.png` (the noised init, what the
model starts from) and `step-NNN.png` for each taken step, NNN being the step's 1-based position
in the whole schedule, as the page's step strip numbers it.
"""
from __future__ import annotations

from pathlib import Path

from .images import png_bytes
from .safe_files import ensure_folder, write_atomic

FOLDER = "intermediates"


def intermediates_dir(outputs_dir: Path, output_name: str) -> Path:
    return Path(outputs_dir) / FOLDER / Path(output_name).stem


def frame_file_name(index: int, step: int) -> str:
    return "init.png" if index < 0 else f"step-{step + 1:03d}.png"


def save_intermediates(outputs_dir: Path, output_name: str, frames, render) -> Path:
    """Write `frames` (StepFrame-like: index, step, latents) rendered by `render(latents)`."""
    folder = ensure_folder(intermediates_dir(outputs_dir, output_name), root=outputs_dir)
    for frame in frames:  # each write refuses links below outputs/, as ensure_folder does
        write_atomic(folder / frame_file_name(frame.index, frame.step), png_bytes(render(frame.latents)),
                     root=outputs_dir)
    return folder
