"""The Flask application factory."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flask import Flask

from . import events  # noqa: F401 - registers the Socket.IO handlers
from ..channel import MessageChannel
from ..engine.families import Hints
from ..metrics import WorkerMetrics
from ..worker.jobs import JobManager
from .realtime import socketio, start_delivery
from ..runtime import Runtime
from .security import AccessPolicy, RequestGuard
from ..settings import DEFAULTS
from ..worker.studio import Studio
from .tabs import TabRegistry

ROOT = Path(__file__).resolve().parents[2]  # the checkout: server/web/ is two folders down


@dataclass
class StudioState:
    """What the handlers reach through app.extensions['studio']."""

    studio: Studio
    jobs: JobManager
    channel: MessageChannel
    runtime: Runtime
    stopping: object
    tabs: TabRegistry
    metrics: WorkerMetrics  # the embedded worker's counts, for GET /metrics

    def shutdown(self) -> None:
        self.stopping.set()
        self.jobs.stop()


def create_app(test_config: dict | None = None, announce=None, model=None) -> Flask:
    """`announce` gets each model status change (the CLI prints them); `model` is an already
    loaded LoadedModel to use instead of loading MODEL_PATH (tests share one)."""
    app = Flask(__name__, template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static"))
    app.config.from_mapping(DEFAULTS)
    if test_config:
        app.config.from_mapping(test_config)
    app.config["MAX_CONTENT_LENGTH"] = int(app.config["MAX_UPLOAD_MB"] * 1024 * 1024)
    policy = AccessPolicy.from_config(app.config)

    runtime = Runtime(app.config["ASYNC_MODE"])
    channel = MessageChannel(runtime)
    metrics = WorkerMetrics(runtime.lock())  # shared by the worker thread and the socket side

    def announce_status(status):
        channel.put("model_status", status.payload(), latest_key="model_status")
        if announce:
            announce(status)

    def model_error(payload):  # payloads.model_error: a load failed; the previous model (if any) keeps running
        channel.put("model_error", payload)

    hints = Hints(app.config["PREDICTION_TYPE"], app.config["MODEL_VARIANT"])
    studio = Studio(Path(app.config["OUTPUTS_DIR"]), app.config["MODEL_PATH"], app.config["DEVICE"], announce_status,
                    preloaded=model, hints=hints, models_dir=app.config["MODELS_DIR"],
                    keep_models=app.config["KEEP_MODELS"], on_model_error=model_error, lock=runtime.lock(),
                    loras=tuple(app.config["LORAS"]), metrics=metrics)
    jobs = JobManager(runtime, channel, studio.run_job, prepare=studio.load,
                      max_per_client=app.config["MAX_JOBS_PER_CLIENT"], max_total=app.config["MAX_JOBS_TOTAL"],
                      metrics=metrics)
    stopping = runtime.event()
    tabs = TabRegistry(app.config["MAX_CONNECTIONS_PER_ADDRESS"])
    app.extensions["studio"] = StudioState(studio, jobs, channel, runtime, stopping, tabs, metrics)
    app.config["MODEL_NAME"] = studio.status.model
    app.config["MODEL_IS_DEMO"] = studio.is_demo

    from . import metrics_route, routes, web

    app.register_blueprint(routes.bp)
    app.register_blueprint(metrics_route.bp)
    app.register_blueprint(web.bp)
    # Never derived from the request's own Host header, which a rebinding page controls.
    socketio.init_app(app, async_mode=app.config["ASYNC_MODE"], max_http_buffer_size=app.config["MAX_CONTENT_LENGTH"],
                      cors_allowed_origins=lambda origin, environ: policy.origin_allowed(origin,
                                                                                         environ.get("HTTP_HOST")))
    # Outermost, so the Socket.IO endpoint passes the same checks as every route.
    app.wsgi_app = RequestGuard(app.wsgi_app, policy)
    app.extensions["access_policy"] = policy
    start_delivery(channel, runtime, stopping, metrics)
    jobs.start()
    return app
