#!/usr/bin/env bash
# Set up (first run only) and run every test: the page's unit tests with node, then pytest
# (engine, server, real eventlet/threading servers, and the browser tests in Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
node --test frontend/test/
exec .venv/bin/python -m pytest "$@"
