"""Command line: `img2img-studio` (or `python -m server`) starts the studio; `generate` runs jobs without it.

`worker` runs jobs for `serve --broker` web processes (cluster mode).
The `generate` syntax is in dream.py and its run in generate_command.py, beside this file.
"""
from __future__ import annotations

import functools
import os
import socket
import sys
import warnings

import click

from ..settings import SETTINGS


class DefaultToServe(click.Group):
    """`img2img-studio [flags]` means `img2img-studio serve [flags]`; later commands sit beside it.

    Commands in `lazy` are built on first use: `generate` needs the engine (torch, diffusers),
    which must not be imported before `serve` has monkey-patched for eventlet, and which takes
    seconds to import.
    """

    lazy = {"generate": ("Generate images from the command line, in InvokeAI's dream syntax.",
                         lambda: _generate_command())}

    def parse_args(self, ctx, args):
        if not args or args[0] not in self.commands and args[0] not in self.lazy \
                and args[0] not in ("--help", "-h"):
            args = ["serve", *args]
        return super().parse_args(ctx, args)

    def list_commands(self, ctx):
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx, name):
        if name in self.lazy and name not in self.commands:
            self.add_command(self.lazy[name][1](), name)
        return super().get_command(ctx, name)

    def format_commands(self, ctx, formatter):
        """The command list, without building the lazy commands just to show their help."""
        rows = [(name, self.lazy[name][0] if name in self.lazy and name not in self.commands
                 else self.commands[name].get_short_help_str(formatter.width - 6 - len(name)))
                for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=DefaultToServe, context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """img2img studio: Stable Diffusion image-to-image in the browser, with live step previews."""


def _setting_options(func, names=None):
    """One click option per setting (the ones in `names`, or all): the table in settings.py."""
    for setting in reversed([s for s in SETTINGS if names is None or s.name in names]):
        kind = click.Choice(setting.choices) if setting.choices else setting.type
        func = click.option(setting.flag, setting.name, default=setting.default, type=kind,
                            multiple=setting.multiple, show_default=setting.default not in (None, ()),
                            help=setting.help)(func)
    return func


class LoadProgress:
    """Prints model loading progress to the terminal as one updating line."""

    def __init__(self, url: str):
        self.url = url
        self.tty = sys.stdout.isatty()

    def __call__(self, status) -> None:
        width = 24
        filled = int(status.progress * width)
        bar = "#" * filled + "-" * (width - filled)
        if status.status == "ready":
            line = f"Model ready: {status.model}. Open {self.url}"
        elif status.status == "error":
            line = f"Model failed to load: {status.message}"
        else:
            line = f"Loading model [{bar}] {status.progress:4.0%} {status.message}"
        if self.tty:
            print("\r\033[K" + line, end="\n" if status.status != "loading" else "", flush=True)
        else:
            print(line, flush=True)


def _check_port_free(host: str, port: int) -> None:
    """eventlet listens with SO_REUSEPORT, so a second studio on a busy port would start
    silently and share connections with the first; refuse clearly instead."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise click.ClickException(
                f"Cannot listen on {host}:{port} ({exc.strerror}). Is the studio already running? "
                f"Stop it or pick another port with --port."
            ) from None


@main.command()
@_setting_options
def serve(**options):
    """Start the studio web server."""
    _check_port_free(options["host"], options["port"])
    # Library chatter (missing torchvision, disabled safety checker) is not for our users.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    if options["async_mode"] == "eventlet":
        # Before anything else imports socket/threading: eventlet must patch them first.
        warnings.filterwarnings("ignore", message="\\s*Eventlet is deprecated")
        import eventlet

        eventlet.monkey_patch()
    from ..web.app import create_app
    from ..web.listener import serve_eventlet
    from ..web.realtime import socketio
    from ..web.security import WILDCARD_HOSTS, is_loopback, new_token
    from ..settings import SETTINGS as table

    config = {s.config_key: options[s.name] for s in table}
    host, port = options["host"], options["port"]
    if not is_loopback(host) and not config["TOKEN"]:
        # Reachable from other machines: nobody gets in without the token (as Jupyter does).
        config["TOKEN"] = new_token()
    shown_host = "127.0.0.1" if host in WILDCARD_HOSTS else (f"[{host}]" if ":" in host else host)
    url = f"http://{shown_host}:{port}/" + (f"?token={config['TOKEN']}" if config["TOKEN"] else "")
    progress = LoadProgress(url)
    from ..worker.job_loras import LoraFlagError

    try:
        app = create_app(config, announce=progress)
    except LoraFlagError as exc:
        raise click.BadParameter(str(exc), param_hint="'--lora'") from None
    print(f"img2img studio serving on {url}  (Ctrl+C to stop)", flush=True)
    try:
        if options["async_mode"] == "eventlet":
            serve_eventlet(app, host, port, config["MAX_CONNECTIONS_PER_ADDRESS"])
        else:  # a local tool's fallback, bound to loopback by default
            socketio.run(app, host=host, port=port, log_output=False, allow_unsafe_werkzeug=True)
    finally:
        app.extensions["studio"].shutdown()


# serve's settings a worker process takes too: what it loads, where, and the shared folders.
WORKER_SETTINGS = ("model", "models_dir", "lora", "prediction_type", "model_variant", "outputs", "device")


@main.command()
@click.option("--broker", required=True, help="Redis URL the web processes were started with (redis://HOST:PORT/0).")
@click.option("--name", default=None, help="This worker's name in the health panel and the logs "
              "[default: HOSTNAME-PID].")
@functools.partial(_setting_options, names=WORKER_SETTINGS)
def worker(broker, name, **options):
    """Run jobs for `serve --broker` web processes: load one model, take its jobs from Celery."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    from pathlib import Path

    from ..engine.families import Hints
    from ..metrics import WorkerMetrics
    from ..worker.celery_worker import default_name, run_worker
    from ..worker.job_loras import LoraFlagError
    from ..worker.studio import Studio

    def announce(status) -> None:
        if status.status == "error":
            print(f"Model failed to load: {status.message}", file=sys.stderr, flush=True)

    try:
        studio = Studio(Path(options["outputs"]), options["model"], options["device"], announce,
                        hints=Hints(options["prediction_type"], options["model_variant"]),
                        models_dir=options["models_dir"], loras=tuple(options["lora"]), metrics=WorkerMetrics())
    except LoraFlagError as exc:
        raise click.BadParameter(str(exc), param_hint="'--lora'") from None
    try:
        run_worker(broker, name or default_name(), studio, announce=lambda line: print(line, flush=True))
    except Exception as exc:  # the model did not load, or Redis is unreachable: say which, no traceback
        raise click.ClickException(str(exc)) from None


def _generate_command() -> click.Command:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    from .dream import DreamCommand, generation_options
    from .generate_command import GENERATE_HELP, run_generate

    @click.command("generate", cls=DreamCommand, help=GENERATE_HELP,
                   short_help=DefaultToServe.lazy["generate"][0])
    @generation_options
    def generate(**_params):
        run_generate(click.get_current_context())

    return generate


if __name__ == "__main__":
    main()
