"""GET /metrics: the studio in Prometheus text format (queue length, jobs by outcome, step time
and preview latency per worker: the embedded worker thread, or each cluster worker's heartbeat). Behind the same RequestGuard as every route: with --token set, a
scraper sends `Authorization: Bearer TOKEN`. Rendering a few counters is cheap: fine on the loop."""
from __future__ import annotations

from flask import Blueprint, Response, current_app

from ..metrics import render

bp = Blueprint("metrics", __name__)

@bp.get("/metrics")
def metrics():
    state = current_app.extensions["studio"]
    body, content_type = render(state.jobs.queue_length(), state.metric_snapshots())
    return Response(body, content_type=content_type)
