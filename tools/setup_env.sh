#!/usr/bin/env bash
# Create or reuse the project's virtual environment with the tested stack (requirements/stack.txt).
#
#   bash tools/setup_env.sh            # idempotent: a second run only checks, in seconds
#
# Environment: VENV (default: .venv in the repository), PYTHON (default: python3.11 or python3),
# SHARED_WHEELS (default: ../shared/wheels; holds a prebuilt mmcv 2.1.0 wheel when present).
# Without that wheel mmcv 2.1.0 is built from source: 20-40 minutes on 2 cores.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
SHARED_WHEELS=${SHARED_WHEELS:-$ROOT/../shared/wheels}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
STAMP=$VENV/.yolov7_mmdet_stack

say() { printf '[setup] %s\n' "$*"; }

stack_fingerprint() {
    cat "$ROOT/requirements/stack.txt" "$ROOT/requirements/tests.txt" "$ROOT/setup.py" | sha256sum | cut -d' ' -f1
}

stack_ready() {
    [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(stack_fingerprint)" ] \
        && "$VENV/bin/python" -c 'import yolov7_mmdet' >/dev/null 2>&1
}

pip_install() { "$VENV/bin/python" -m pip install --disable-pip-version-check -q "$@"; }

pinned() { grep -E "^$1([=<>!~ ]|$)" "$ROOT/requirements/stack.txt" | head -1; }

# Run a long command while printing an elapsed-time line every 60 s, so a 30-minute build shows life.
with_progress() {
    local label=$1; shift
    "$@" &
    local pid=$! start=$SECONDS next=60
    while kill -0 "$pid" 2>/dev/null; do
        sleep 5
        if (( SECONDS - start >= next )); then
            say "$label: still running, $(( next / 60 )) min elapsed"
            next=$(( next + 60 ))
        fi
    done
    wait "$pid"
}

install_mmcv() {
    local spec find_links=()
    spec=$(pinned mmcv)
    if ls "$SHARED_WHEELS"/mmcv-*.whl >/dev/null 2>&1; then
        say "installing $spec (prebuilt wheel from $SHARED_WHEELS when it fits this Python and torch)"
        find_links=(--find-links "$SHARED_WHEELS")
    else
        say "no prebuilt mmcv wheel in $SHARED_WHEELS: building $spec from source with its C++ ops" \
            "(20-40 minutes on 2 cores)"
    fi
    # --no-build-isolation: an isolated build sees no torch and silently drops mmcv._ext.
    MAX_JOBS=${MAX_JOBS:-$(nproc)} with_progress "mmcv build" \
        "$VENV/bin/python" -m pip install --disable-pip-version-check -q --no-build-isolation \
        "${find_links[@]}" "$spec"
}

main() {
    if [ -x "$VENV/bin/python" ] && stack_ready; then
        say "environment $VENV is ready"
        return 0
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating virtual environment $VENV with $PYTHON"
        "$PYTHON" -m venv "$VENV"
    fi
    say "installing torch, numpy and build tools"
    pip_install "$(pinned torch)" "$(pinned numpy)" "$(pinned setuptools)" wheel
    if ! "$VENV/bin/python" -c 'import mmcv, mmcv._ext' >/dev/null 2>&1; then
        install_mmcv
    fi
    say "installing mmengine, mmdet, pycocotools, seaborn, psutil, onnx, onnxruntime, onnxslim, pytest and yolov7_mmdet (editable)"
    pip_install "$(pinned mmengine)" "$(pinned mmdet)" "$(pinned pycocotools)" "$(pinned seaborn)" \
        "$(pinned psutil)" "$(pinned onnx)" "$(pinned onnxruntime)" "$(pinned onnxslim)" \
        -r "$ROOT/requirements/tests.txt"
    pip_install --no-build-isolation --no-deps -e "$ROOT"
    "$VENV/bin/python" -c 'import yolov7_mmdet' # fails with a clear message on a broken stack
    stack_fingerprint > "$STAMP"
    say "environment $VENV is ready"
}

main "$@"
