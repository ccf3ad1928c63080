"""The repository builds as a ROS 2 package with colcon (with the venv's ROS wheels), installs the
launch file, the config and the node executables, and the installed Python package holds both the
generated message module and our modules."""
import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)


def test_launch_file_is_a_ros2_launch_file():
    tree = ast.parse((REPO / "launch" / "pose.launch.py").read_text())
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in names
    imports = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert {"launch", "launch_ros.actions"} <= imports
    text = (REPO / "launch" / "pose.launch.py").read_text()
    cmake = (REPO / "CMakeLists.txt").read_text()
    for exe in ("pose_node", "sample_camera"):          # what the launch file starts is installed
        assert f'executable="{exe}"' in text and f"{exe}:" in cmake


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("colcon", path=str(VENV / "bin")) is None, reason="colcon not in the venv")
def test_colcon_build_installs_package(tmp_path):
    src = tmp_path / "ws" / "src" / "diffpose_ros"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".venv", ".git", "build", "install", "log", "out",
                                                            "__pycache__", "*.onnx", "docs"))
    env = dict(os.environ, PATH=f"{VENV / 'bin'}:{os.environ['PATH']}", CMAKE_PREFIX_PATH=str(VENV),
               AMENT_PREFIX_PATH=str(VENV))
    subprocess.run(["colcon", "build", "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}",
                    "-DBUILD_TESTING=OFF"], cwd=tmp_path / "ws", env=env, check=True,
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    inst = tmp_path / "ws" / "install" / "diffpose_ros"
    share = inst / "share" / "diffpose_ros"
    assert (share / "launch" / "pose.launch.py").is_file()
    assert (share / "config" / "pose.yaml").is_file()
    assert {"pose_node", "sample_camera"} <= {p.name for p in (inst / "lib" / "diffpose_ros").iterdir()}
    site = inst / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    code = ("import diffpose_ros, diffpose_ros.skeleton; from diffpose_ros.msg import HumanPose3DArray; "
            "print(diffpose_ros.__file__); print(diffpose_ros.msg.__file__)")
    out = subprocess.run([sys.executable, "-c", code], env=dict(env, PYTHONPATH=str(site)), cwd=tmp_path,
                         check=True, capture_output=True, text=True).stdout.split()
    assert all(str(site) in line for line in out), out    # both from the install space
