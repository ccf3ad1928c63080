#!/usr/bin/env bash
# The second ROS distribution for CI: .venv-jazzy with the ROS 2 Jazzy wheels (requirements-jazzy.txt),
# the same other pins as .venv, and msg/ built against Jazzy. Run scripts/setup.sh first (it
# exports the detector ONNX both venvs use). Idempotent like setup.sh.
exec env ROS_WHEELS=jazzy bash "$(dirname "$0")/setup.sh" "$@"
