#!/usr/bin/env bash
# The test suite as CI runs it: the fast tests plus the slow ones that fit in CI (training,
# colcon build and ros2 launch, short soak) on the ROS 2 Kilted venv, then the ROS-facing tests
# (node, end to end, messages, markers) again on the Jazzy venv when it is there
# (scripts/setup_jazzy.sh). Plain `pytest` runs only the fast ones. DDS is isolated per run by
# test/conftest.py. Arguments go to the Kilted run only (and then Jazzy is skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
.venv/bin/python -m pytest test -m "" "$@"
if [ $# -eq 0 ] && [ -x .venv-jazzy/bin/python ]; then
  echo "[test] ROS 2 Jazzy ($(.venv-jazzy/bin/python -c 'import importlib.metadata as m; print("rclpy", m.version("ros-rclpy"))'))"
  .venv-jazzy/bin/python -m pytest -m "" test/test_ros_node.py test/test_ros_end_to_end.py \
    test/test_ros_messages.py test/test_ros_markers.py test/test_ros_images.py test/test_bag_replay.py \
    test/test_ros_sample_camera_stop.py test/test_ros_overlap.py
fi
