#!/usr/bin/env bash
# Training on a Slurm cluster: one task per GPU, mmengine's slurm launcher reads the rank, the
# world size and the master address from Slurm's environment.
#   [GPUS=16 GPUS_PER_NODE=8 CPUS_PER_TASK=5 SRUN_ARGS=...] \
#   bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py flags...]
# GPUS_PER_NODE=0 runs CPU tasks (gloo), e.g. to try the set-up. See docs/distributed.md.
set -euo pipefail
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
TASKS_PER_NODE=${TASKS_PER_NODE:-$(( GPUS_PER_NODE > 0 ? GPUS_PER_NODE : 1 ))}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-}
HERE=$(cd "$(dirname "$0")" && pwd)
# The interpreter: $PYTHON, else the repository's virtual environment (tools/setup_env.sh makes
# .venv, or $VENV), else the first python on PATH.
VENV=${VENV:-$HERE/../.venv}
if [ -z "${PYTHON:-}" ] && [ -x "$VENV/bin/python" ]; then PYTHON=$(cd "$VENV/bin" && pwd)/python; fi
GRES=()
if (( GPUS_PER_NODE > 0 )); then GRES=(--gres="gpu:$GPUS_PER_NODE"); fi

# shellcheck disable=SC2086  # SRUN_ARGS holds several srun flags
PYTHONPATH="$HERE/..${PYTHONPATH:+:$PYTHONPATH}" \
srun -p "$PARTITION" --job-name="$JOB_NAME" "${GRES[@]}" --ntasks="$GPUS" \
    --ntasks-per-node="$TASKS_PER_NODE" --cpus-per-task="$CPUS_PER_TASK" --kill-on-bad-exit=1 \
    $SRUN_ARGS "${PYTHON:-python}" -u "$HERE/train.py" "$CONFIG" --work-dir="$WORK_DIR" \
    --launcher=slurm "${@:5}"
