#!/usr/bin/env bash
# Set up (first run only) and start the studio; extra arguments go to `python -m server`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m server "$@"
