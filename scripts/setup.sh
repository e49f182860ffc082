#!/usr/bin/env bash
# Installs what the studio needs into .venv and frontend/node_modules; safe to run again.
# Usage: scripts/setup.sh [--test]   (--test adds the test tools, Debian's Chromium and redis-server;
#        WANT_REDIS=1 adds redis-server alone, for scripts/cluster.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
if [ "${1:-}" = "--test" ]; then want_test=1; fi
PYTHON=${PYTHON:-python3}
# CPU wheel by default. For an NVIDIA GPU pick a CUDA build, e.g.
#   TORCH_SPEC="torch==2.13.0" TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 scripts/studio.sh
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

need() { command -v "$1" >/dev/null 2>&1 || { echo "setup: '$1' is required but not installed. $2" >&2; exit 1; }; }
need "$PYTHON" "Install Python 3.11 or newer."
need npm "Install Node.js 18 or newer (it brings npm)."

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
py=.venv/bin/python

# Torch first, explicitly: left to the resolver, a bare 'torch' pulls a multi-GB CUDA build.
if ! "$py" -c "import torch" 2>/dev/null; then
  echo "setup: installing $TORCH_SPEC"
  "$py" -m pip install --quiet --upgrade pip
  "$py" -m pip install --quiet ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "$TORCH_SPEC"
fi

if [ $want_test = 1 ]; then
  extras="[test]" stamp=.venv/.installed-test
else
  extras="" stamp=.venv/.installed
fi
digest=$(sha256sum pyproject.toml | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
  echo "setup: installing the studio and its Python dependencies"
  "$py" -m pip install --quiet -e ".$extras"
  echo "$digest" > "$stamp"
fi

# CLIP's BPE vocabulary for single-file checkpoints (server/engine/clip_tokenizer.py) comes from open_clip_torch.
# --no-deps: its torchvision dependency can replace the CPU torch build; we need only its BPE vocabulary file.
OPEN_CLIP_VERSION=3.3.0
if ! "$py" -c "import importlib.metadata as m, sys; sys.exit(m.version('open_clip_torch') != '$OPEN_CLIP_VERSION')" 2>/dev/null; then
  echo "setup: installing open_clip_torch==$OPEN_CLIP_VERSION (without its dependencies)"
  "$py" -m pip install --quiet --no-deps "open_clip_torch==$OPEN_CLIP_VERSION"
fi

lock_digest=$(sha256sum frontend/package-lock.json | cut -c1-16)
if [ "$(cat frontend/node_modules/.installed 2>/dev/null)" != "$lock_digest" ]; then
  echo "setup: installing the page's npm packages"
  npm ci --prefix frontend --no-audit --no-fund --loglevel=error
  echo "$lock_digest" > frontend/node_modules/.installed
fi

# Debian packages: Chromium for the browser tests, redis-server for cluster mode (scripts/cluster.sh
# and the cluster tests). Installing redis-server starts no service here; the scripts start their own.
debs=()
if [ $want_test = 1 ] && [ ! -x /usr/bin/chromium ]; then debs+=(chromium); fi
if { [ $want_test = 1 ] || [ "${WANT_REDIS:-0}" = 1 ]; } && ! command -v redis-server >/dev/null 2>&1; then
  debs+=(redis-server)
fi
if [ ${#debs[@]} -gt 0 ]; then
  echo "setup: installing Debian's ${debs[*]}"
  sudo_cmd=""
  if [ "$(id -u)" != 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${debs[@]}" >/dev/null
fi
echo "setup: done"
