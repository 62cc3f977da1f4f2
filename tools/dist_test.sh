#!/usr/bin/env bash
# Distributed evaluation with torchrun and mmengine's pytorch launcher, on GPUs or on CPUs alone.
#   bash tools/dist_test.sh CONFIG CHECKPOINT NPROC [test.py flags...]
# Same environment variables as tools/dist_train.sh (NNODES, NODE_RANK, MASTER_ADDR, PORT, PYTHON).
set -euo pipefail
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
HERE=$(cd "$(dirname "$0")" && pwd)
# The interpreter: $PYTHON, else the repository's virtual environment (tools/setup_env.sh makes
# .venv, or $VENV), else the first python on PATH.
VENV=${VENV:-$HERE/../.venv}
if [ -z "${PYTHON:-}" ] && [ -x "$VENV/bin/python" ]; then PYTHON=$(cd "$VENV/bin" && pwd)/python; fi

PYTHONPATH="$HERE/..${PYTHONPATH:+:$PYTHONPATH}" \
"${PYTHON:-python}" -m torch.distributed.run --nnodes="$NNODES" --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" --master_port="$PORT" --nproc_per_node="$NPROC" \
    "$HERE/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}"
