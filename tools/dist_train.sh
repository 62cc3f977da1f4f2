#!/usr/bin/env bash
# Distributed training with torchrun and mmengine's pytorch launcher, on GPUs or on CPUs alone.
#   bash tools/dist_train.sh CONFIG NPROC [train.py flags...]
# NPROC processes per node: one per GPU; on a machine without CUDA, CPU processes (gloo backend,
# SyncBN reverted to BN; chosen by tools/train.py). Multi-node: on every node set
#   NNODES=2 NODE_RANK=0|1 MASTER_ADDR=<address of node 0> PORT=29500
# PYTHON selects the interpreter (default: the repository's .venv when it exists, else python).
# See docs/distributed.md.
set -euo pipefail
CONFIG=$1
NPROC=$2
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
    "$HERE/train.py" "$CONFIG" --launcher pytorch "${@:3}"
