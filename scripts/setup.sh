#!/usr/bin/env bash
# Create .venv (if missing) and install sparkonnx with every extra, pinned by constraints.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "sparkonnx setup: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
echo "sparkonnx setup: installing sparkonnx[convert,connect,dev] (first run downloads ~1 GB)"
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[convert,connect,dev]"
# onnxruntime and onnxruntime-gpu share one module and silently overwrite each other.
if .venv/bin/python -m pip show onnxruntime >/dev/null 2>&1 && \
   .venv/bin/python -m pip show onnxruntime-gpu >/dev/null 2>&1; then
  echo "sparkonnx setup: both onnxruntime and onnxruntime-gpu are installed; keep only one" >&2
  exit 1
fi
java -version >/dev/null 2>&1 || { echo "sparkonnx setup: Java (17+) is needed by Spark" >&2; exit 1; }
