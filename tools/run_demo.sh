#!/usr/bin/env bash
# Set up (or reuse) the environment, then run the main job: build the embedded demo dataset,
# train yolov7-tiny on it with tools/train.py, evaluate (COCO mAP) and save an image of predictions.
#   bash tools/run_demo.sh [--work-dir DIR]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/tools/setup_env.sh"
cd "$ROOT"
exec "${VENV:-$ROOT/.venv}/bin/python" tools/main_job.py "$@"
