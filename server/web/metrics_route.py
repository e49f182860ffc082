"""GET /metrics: the studio in Prometheus text format (queue length, jobs by outcome, step time
and preview latency per worker). Behind the same RequestGuard as every route: with --token set, a
scraper sends `Authorization: Bearer TOKEN`. Rendering a few counters is cheap: fine on the loop."""
from __future__ import annotations

from flask import Blueprint, Response, current_app

from ..metrics import render

bp = Blueprint("metrics", __name__)

EMBEDDED_WORKER = "embedded"  # the name /api/health lists the embedded worker thread under


@bp.get("/metrics")
def metrics():
    state = current_app.extensions["studio"]
    body, content_type = render(state.jobs.queue_length(), {EMBEDDED_WORKER: state.metrics.snapshot()})
    return Response(body, content_type=content_type)
