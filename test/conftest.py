"""Test harness: DDS isolation for the whole test session, and markers.

Every test session gets its own ROS_DOMAIN_ID, discovery limited to localhost and the Fast DDS
profile with a large shared-memory segment (config/fastdds.xml). The variables are set before
anything initialises rclpy, and subprocesses inherit them.
"""
import sys
from pathlib import Path

import pytest

from diffpose_ros.tools.demo import ros_environment

REPO = Path(__file__).resolve().parents[1]


# the same settings as the tools (diffpose-demo, -soak, -bench-node) use
ros_environment()


@pytest.fixture(scope="session")
def ros_env():
    """Environment for ROS subprocesses: the session's isolated DDS settings."""
    return ros_environment()


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory):
    """A data cache of the module's own (DIFFPOSE_CACHE) for module-scoped fixtures that build one."""
    mp = pytest.MonkeyPatch()
    mp.setenv("DIFFPOSE_CACHE", str(tmp_path_factory.mktemp("cache")))
    try:
        yield
    finally:
        mp.undo()


@pytest.fixture(scope="session")
def python_exe():
    return sys.executable
