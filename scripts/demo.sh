#!/usr/bin/env bash
# The main job on the bundled input: sample camera -> pose node -> MCAP bag + rendered PNG frames.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/diffpose-demo "$@"
