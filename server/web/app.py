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
from .cluster_jobs import ClusterJobs, SeenEndsManager
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
    cluster: bool = False  # serve --broker: jobs are ClusterJobs, run by worker processes

    def model_status(self):
        """What the page shows as the model's status: the studio's own model, or in a cluster the
        workers serving the selected model."""
        if self.cluster:
            return self.jobs.model_status(self.studio.models.selection.choice.name)
        return self.studio.status

    def workers(self) -> list[dict]:
        """/api/health's `workers`: the cluster's live workers, or the embedded worker thread."""
        if self.cluster:
            keys = ("name", "model", "device", "state", "job_id", "jobs_done", "seen_s_ago")
            return [{k: w.get(k) for k in keys} for w in self.jobs.workers]
        status, running = self.studio.status, self.jobs.running_job()
        state = {"loading": "loading", "error": "error"}.get(status.status, "busy" if running else "idle")
        return [{"name": "embedded", "model": status.model, "device": self.studio.device_name, "state": state,
                 "job_id": running, "jobs_done": self.jobs.jobs_ended, "seen_s_ago": 0.0}]

    def metric_snapshots(self) -> dict[str, dict]:
        """GET /metrics' per-worker counts: each cluster worker's (from its heartbeat), or the
        embedded worker thread's."""
        if self.cluster:
            return {w["name"]: w["metrics"] for w in self.jobs.workers if w.get("metrics")}
        return {"embedded": self.metrics.snapshot()}

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
    broker = app.config["BROKER_URL"]
    state = None
    metrics = WorkerMetrics(runtime.lock())  # shared by the worker thread and the socket side

    def announce_status(status):
        if state is not None and state.cluster:  # a selection changed: the workers say how it stands
            status = state.model_status()
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
    caps = {"max_per_client": app.config["MAX_JOBS_PER_CLIENT"], "max_total": app.config["MAX_JOBS_TOTAL"]}
    if broker:  # a web process of a cluster: no model here, workers run the jobs
        jobs = ClusterJobs(broker, socketio, **caps)
        jobs.on_workers_changed = lambda workers: announce_status(None)
    else:
        jobs = JobManager(runtime, channel, studio.run_job, prepare=studio.load, metrics=metrics, **caps)
    stopping = runtime.event()
    tabs = TabRegistry(app.config["MAX_CONNECTIONS_PER_ADDRESS"])
    state = StudioState(studio, jobs, channel, runtime, stopping, tabs, metrics, cluster=bool(broker))
    app.extensions["studio"] = state
    app.config["MODEL_NAME"] = studio.status.model
    app.config["MODEL_IS_DEMO"] = studio.is_demo

    from . import metrics_route, routes, web

    app.register_blueprint(routes.bp)
    app.register_blueprint(metrics_route.bp)
    app.register_blueprint(web.bp)
    # Never derived from the request's own Host header, which a rebinding page controls.
    # In a cluster every emit goes through Redis, so workers and other web processes reach this one's tabs.
    socketio.init_app(app, async_mode=app.config["ASYNC_MODE"], max_http_buffer_size=app.config["MAX_CONTENT_LENGTH"],
                      client_manager=SeenEndsManager(broker, jobs.end_seen) if broker else None,
                      cors_allowed_origins=lambda origin, environ: policy.origin_allowed(origin,
                                                                                         environ.get("HTTP_HOST")))
    # Outermost, so the Socket.IO endpoint passes the same checks as every route.
    app.wsgi_app = RequestGuard(app.wsgi_app, policy)
    app.extensions["access_policy"] = policy
    start_delivery(channel, runtime, stopping, metrics)
    jobs.start()
    return app
