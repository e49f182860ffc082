"""What `generate` shows on the terminal: progress bars and warnings on stderr, each saved
output's path and reproducing command on stdout (so `generate ... > runs.txt` keeps just those)."""
from __future__ import annotations

import sys
from pathlib import Path

import click


def warn(message: str) -> None:
    click.secho(f"Warning: {message}", fg="yellow", err=True)


def quiet_library_progress_bars() -> None:
    """transformers and diffusers draw their own bars while loading; ours says it already."""
    for name in ("transformers", "diffusers"):
        try:
            __import__(f"{name}.utils.logging", fromlist=["disable_progress_bar"]).disable_progress_bar()
        except (ImportError, AttributeError):
            pass


class LoadBar:
    """Model loading progress (Studio's announce callback) as a progress bar on stderr."""

    def __init__(self):
        self.bar = None
        self.message = ""
        self.shown = 0

    def __call__(self, status) -> None:
        if status.status == "loading":
            if self.bar is None:
                self.bar = click.progressbar(length=100, label=f"Loading {status.model}", file=sys.stderr,
                                             item_show_func=lambda _: self.message)
                self.bar.__enter__()
            self.message = status.message
            target = int(status.progress * 100)
            self.bar.update(max(0, target - self.shown))
            self.shown = max(self.shown, target)
        else:
            self.close(complete=status.status == "ready")

    def close(self, complete: bool = False) -> None:
        if self.bar is not None:
            if complete:
                self.bar.update(100 - self.shown)
            self.bar.__exit__(None, None, None)
            self.bar = None


class StepProgress:
    """A progress bar per output from the job's events; prints each saved output as it comes."""

    def __init__(self, outputs_dir: Path):
        self.outputs_dir = outputs_dir
        self.bar = None
        self.taken = self.done = self.polls = 0
        self.reported: set[str] = set()

    def emit(self, event: str, payload: dict, latest: bool = False) -> None:
        if event == "job_plan":
            self.close()
            self.taken, self.done, self.polls = payload["taken"], 0, 0
            items = payload.get("items") or 1
            label = "Generating" if items == 1 else f"Generating {payload.get('item', 0) + 1}/{items}"
            label += f" ({payload['taken']} of {payload['steps_total']} steps)"
            self.bar = click.progressbar(length=max(self.taken, 1), label=label, file=sys.stderr)
            self.bar.__enter__()
        elif event == "job_step" and payload.get("index", -1) >= 0:
            self._advance(payload["index"] + 1)
        elif event == "job_output":
            self.close()
            self.report(payload)

    def poll(self) -> None:
        """The engine checks for cancel before each step and before decoding."""
        if self.bar is not None:
            self.polls += 1
            self._advance(self.polls - 1)

    def _advance(self, done: int) -> None:
        done = min(done, self.taken)
        if self.bar is not None and done > self.done:
            self.bar.update(done - self.done)
            self.done = done

    def close(self, complete: bool = True) -> None:
        if self.bar is not None:
            if complete:
                self._advance(self.taken)
            self.bar.__exit__(None, None, None)
            self.bar = None

    def report(self, output: dict) -> None:
        """The saved file and the command that reproduces it (stdout, one output each)."""
        from ..storage.metadata import dream_command

        if output["name"] in self.reported:
            return
        self.reported.add(output["name"])
        metadata = output.get("metadata") or {}
        for warning in metadata.get("warnings") or ():
            warn(warning)
        click.echo(str(self.outputs_dir / output["name"]))
        click.echo(f"  img2img-studio generate {dream_command(metadata)}")
        if output.get("intermediates_dir"):
            click.echo(f"Intermediates saved in {output['intermediates_dir']}", err=True)
