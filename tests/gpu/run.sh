#!/usr/bin/env bash
# The GPU checks in one command, on a machine with an NVIDIA GPU (and PyPI reachable):
#   bash tests/gpu/run.sh [pytest options]
# Builds a venv of its own (.venv-gpu, or $SANDFLOW_GPU_VENV) from requirements-gpu.txt (vllm 0.32.0 and the
# model stack around it), then runs the tests marked gpu (tests/gpu/) with this checkout's sandflow on the path.
# Measured budget: the install is most of it (a few GB of wheels); the tests take about a minute on one GPU.
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${PYTHON:-python3}
venv=${SANDFLOW_GPU_VENV:-.venv-gpu}
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r requirements-gpu.txt
# A CPU build of torch would only skip every test: say so and stop.
"$venv/bin/python" -c 'import sys, torch; sys.exit(None if torch.cuda.is_available() else f"tests/gpu/run.sh: torch {torch.__version__} in '"$venv"' sees no CUDA GPU; the gpu tests would all skip")'
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=offline
exec "$venv/bin/python" -m pytest tests/gpu -m gpu -p no:cacheprovider -rs "$@"
