"""Test harness: DDS isolation for the whole test session, and markers.

Every test session gets its own ROS_DOMAIN_ID, discovery limited to localhost and the Fast DDS
profile with a large shared-memory segment (config/fastdds.xml). The variables are set before
anything initialises rclpy, and subprocesses inherit them.
"""
import os
import random
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _isolate_dds():
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 100)))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"
    profile = str(REPO / "config" / "fastdds.xml")
    os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = profile


_isolate_dds()


@pytest.fixture(scope="session")
def ros_env():
    """Environment for ROS subprocesses: the session's isolated DDS settings."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="session")
def python_exe():
    return sys.executable
