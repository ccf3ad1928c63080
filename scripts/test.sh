#!/usr/bin/env bash
# Runs the test suite in the venv with DDS isolated for this run (test/conftest.py).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
exec .venv/bin/python -m pytest test "$@"
