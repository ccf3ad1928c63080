#!/usr/bin/env bash
# The test suite as CI runs it: the fast tests plus the slow ones that fit in CI (training,
# colcon build, short soak). Plain `pytest` runs only the fast ones. DDS is isolated for the
# run by test/conftest.py.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
exec .venv/bin/python -m pytest test -m "" "$@"
