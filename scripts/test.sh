#!/usr/bin/env bash
# Set everything up, then run the test suite (extra pytest arguments are passed through).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export SPARK_LOCAL_IP=${SPARK_LOCAL_IP:-127.0.0.1}
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy sparkonnx
exec .venv/bin/python -m pytest "$@"
