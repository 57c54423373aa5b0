#!/usr/bin/env bash
# Set everything up, then run the end-to-end demo on local Spark.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python examples/demo.py "$@"
