#!/usr/bin/env bash
# The GPU check of issue 21 (under 10 minutes on one GPU): the CUDA tests, voxel-grid throughput
# against the CPU paths, the model forward at 448 with and without AMP, a 200-step full-size
# distillation and an eval of the demo bag at full rate, printed as one table (also written to
# out/bench/gpu_check/table.md). Run it from the repository on a machine with a CUDA GPU:
#   make setup && benchmarks/gpu_check.sh            # or: benchmarks/gpu_check.sh --device cuda:1
#   benchmarks/gpu_check.sh --device cpu --quick     # checks the script itself without a GPU
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash scripts/with_env.sh "${EVENT_FM_VENV:-.venv}/bin/python" benchmarks/gpu_check.py "$@"
