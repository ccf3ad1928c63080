"""The repository as a ROS 2 package: what package.xml declares, that the venv does not pose as
the package, and (slow) real colcon builds of the checkout itself, with its .venv inside, plain
and with --symlink-install, then `ros2 launch diffpose_ros pose.launch.py sample_camera:=true`
from each install space with the real launch system (../shared/ros-launch, installed by setup)."""
import ast
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from launch_terminal import close_terminal, start_launch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)
PY_DIR = f"python{sys.version_info.major}.{sys.version_info.minor}"


def ros_imports() -> set[str]:
    """Top-level modules imported by the package and the launch file that are ROS packages
    (registered in the venv's ament index)."""
    index = VENV / "share" / "ament_index" / "resource_index" / "packages"
    names = set()
    for path in [*(REPO / "diffpose_ros").rglob("*.py"), *(REPO / "launch").glob("*.py")]:
        for n in ast.walk(ast.parse(path.read_text())):
            if isinstance(n, ast.Import):
                names |= {a.name.split(".")[0] for a in n.names}
            elif isinstance(n, ast.ImportFrom) and n.module and not n.level:
                names.add(n.module.split(".")[0])
    return {n for n in names if (index / n).exists()}


def test_package_xml_declares_what_is_used():
    root = ET.parse(REPO / "package.xml").getroot()
    declared = {e.text for e in root if e.tag.endswith("depend")}
    used = ros_imports()
    assert {"rclpy", "sensor_msgs", "ament_index_python", "launch", "launch_ros"} <= used
    assert used - declared == set(), f"imported but not declared in package.xml: {used - declared}"
    assert not {"cv_bridge", "rviz2"} & declared, "declared but not used (RViz is optional)"


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
    assert "export_detector:" in cmake                   # `ros2 run diffpose_ros export_detector`


def test_venv_does_not_register_a_second_diffpose_ros(monkeypatch):
    """The venv holds the generated message module only: with the venv on AMENT_PREFIX_PATH,
    ament must not find a diffpose_ros there (it has no launch/ and would shadow the workspace)."""
    from ament_index_python.packages import get_packages_with_prefixes
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(VENV))
    prefixes = get_packages_with_prefixes()
    assert "rclpy" in prefixes                     # the venv's index is read ...
    assert "diffpose_ros" not in prefixes          # ... and has no diffpose_ros
    assert not (VENV / "share" / "diffpose_ros").exists()


def load_launch_file():
    pytest.importorskip("launch_ros", reason="the launch system is not in this venv (setup installs it)")
    import importlib.util
    spec = importlib.util.spec_from_file_location("pose_launch", REPO / "launch" / "pose.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_launch_overrides_only_what_is_given():
    """A launch argument left out changes nothing (the params file's value stays); one given
    wins; use_sim_time is a bool; rviz:=true without rviz2 stops before anything starts."""
    module = load_launch_file()
    not_given = {name: "" for name in module.OVERRIDES}
    assert module.given_overrides(not_given) == {}
    assert module.given_overrides(dict(not_given, image_topic="/cam/image", backend="torch", use_sim_time="true",
                                       lifter_weights="temporal")) == {
        "image_topic": "/cam/image", "backend": "torch", "use_sim_time": True, "lifter_weights": "temporal"}
    assert module.given_overrides(dict(not_given, use_sim_time="false")) == {"use_sim_time": False}
    assert module.given_overrides(dict(not_given, camera_height_m="1.2", camera_pitch_deg="15")) == {
        "camera_height_m": 1.2, "camera_pitch_deg": 15.0}
    with pytest.raises(RuntimeError, match="camera_height_m:='high' is not a number"):
        module.given_overrides(dict(not_given, camera_height_m="high"))
    module.check_rviz(False)
    with pytest.raises(RuntimeError, match="rviz2 is not installed"):   # no rviz2 in this venv
        module.check_rviz(True)


def test_missing_bundled_detector_says_how_to_export(monkeypatch, tmp_path):
    from diffpose_ros.detector import export
    from diffpose_ros.paths import detector_model_problem
    monkeypatch.setattr(export, "DEFAULT_ONNX", tmp_path / "yolo11n-pose.onnx")
    assert "ros2 run diffpose_ros export_detector" in detector_model_problem("")
    assert "does not exist" in detector_model_problem(str(tmp_path / "mine.onnx"))
    (tmp_path / "mine.onnx").write_bytes(b"x")
    assert detector_model_problem(str(tmp_path / "mine.onnx")) is None


def test_sample_camera_without_its_photos_says_what_to_do(monkeypatch, tmp_path):
    """Outside the checkout and without an installed copy, the default source is a clear error."""
    from diffpose_ros import paths
    from diffpose_ros.ros.sample_camera import FrameSource
    monkeypatch.setattr(paths, "IMAGES_DIR", tmp_path / "no_images")
    monkeypatch.setattr(paths, "installed_share_dir", lambda: tmp_path / "share")
    with pytest.raises(FileNotFoundError, match="sample_source:="):
        FrameSource("")
    (tmp_path / "share" / "sample_images").mkdir(parents=True)
    for name in paths.DEFAULT_SAMPLE_IMAGES:              # an install space's copy is used
        shutil.copy(REPO.parent / "shared" / "data" / "images" / name, tmp_path / "share" / "sample_images")
    assert FrameSource("").files[0].parent == tmp_path / "share" / "sample_images"


# ---------------------------------------------------------------------------- colcon + ros2 launch
needs_launch = pytest.mark.skipif(
    shutil.which("colcon", path=str(VENV / "bin")) is None or not (VENV / "bin" / "ros2").exists(),
    reason="colcon or ros2 launch not in the venv (setup installs them from ../shared/ros-launch)")


def build_env() -> dict:
    return dict(os.environ, PATH=f"{VENV / 'bin'}:{os.environ['PATH']}", CMAKE_PREFIX_PATH=str(VENV),
                AMENT_PREFIX_PATH=str(VENV))


def colcon_build(ws: Path, *extra) -> Path:
    """Build the checkout itself (its real path, .venv inside it) in workspace ws."""
    ws.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(["colcon", "build", "--base-paths", str(REPO), *extra, "--cmake-args",
                          f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF"],
                         cwd=ws, env=build_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         timeout=600)
    log = (ws / "log" / "latest_build" / "diffpose_ros" / "stdout_stderr.log")
    assert out.returncode == 0, out.stdout[-3000:] + (log.read_text()[-3000:] if log.exists() else "")
    return ws / "install"


def check_install(install: Path):
    inst = install / "diffpose_ros"
    share = inst / "share" / "diffpose_ros"
    assert (share / "launch" / "pose.launch.py").is_file() and (share / "config" / "pose.yaml").is_file()
    assert sorted(p.name for p in (share / "sample_images").iterdir()) == ["basketball1.png", "basketball2.png",
                                                                           "messi5.jpg"]
    for exe in ("pose_node", "sample_camera", "export_detector"):
        path = inst / "lib" / "diffpose_ros" / exe
        assert os.access(path, os.X_OK), f"{path} is not executable (mode {oct(path.resolve().stat().st_mode)})"
    site = inst / "lib" / PY_DIR / "site-packages"
    code = ("import diffpose_ros, diffpose_ros.skeleton; from diffpose_ros.msg import HumanPose3DArray; "
            "print(diffpose_ros.__file__); print(diffpose_ros.msg.__file__)")
    out = subprocess.run([sys.executable, "-c", code], env=dict(build_env(), PYTHONPATH=str(site)),
                         cwd=install.parent, check=True, capture_output=True, text=True).stdout.split()
    assert all(str(site) in line for line in out), out    # both from the install space


def launch(install: Path, log_path: Path, ros_env: dict, *args):
    """`source install/setup.bash && ros2 launch ...` with the venv first on PATH and nothing else
    (the test session's DDS isolation comes from ros_env); its own process group."""
    env = {k: v for k, v in ros_env.items() if not k.startswith(("AMENT_", "CMAKE_", "COLCON_"))}
    env["PATH"] = f"{VENV / 'bin'}:{os.environ['PATH']}"
    cmd = f"source {install / 'setup.bash'} && exec ros2 launch diffpose_ros pose.launch.py {' '.join(args)}"
    return start_launch(cmd, env, open(log_path, "w"))   # a terminal on stdin: launch_terminal.py


def receive(topic: str, launched, log_path: Path, n: int = 2, timeout: float = 150.0):
    """n HumanPose3DArray messages on topic, and the node's latest diagnostics values."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor

    from diffpose_ros.msg import HumanPose3DArray
    context = rclpy.Context()            # its own, whatever other tests of the session initialised
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("launch_test_listener", context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        poses, diags = [], []
        node.create_subscription(HumanPose3DArray, topic, poses.append, 10)
        node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
        deadline = time.monotonic() + timeout
        def loaded(d):  # a diagnostics message sent after the models loaded (earlier ones say "loading")
            return any(kv.key == "backend" and kv.value != "loading" for kv in d.status[0].values)
        seen_at = None  # len(diags) when the n-th pose with people arrived: report a later diagnostics
        while (seen_at is None or not any(map(loaded, diags[seen_at:]))) and time.monotonic() < deadline:
            assert launched.poll() is None, log_path.read_text()[-4000:]
            executor.spin_once(timeout_sec=0.1)
            if seen_at is None and len([p for p in poses if p.people]) >= n:
                seen_at = len(diags)
        assert len([p for p in poses if p.people]) >= n, f"no {topic} with people:\n{log_path.read_text()[-4000:]}"
        graph = {name: [i.node_name for i in node.get_subscriptions_info_by_topic(name)]
                 for name, _ in node.get_topic_names_and_types()}
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
    last = [d for d in diags if loaded(d)] or diags
    return poses, {kv.key: kv.value for kv in last[-1].status[0].values}, graph


def stop(launched, log_path: Path) -> None:
    """SIGINT to the launch's process group (Ctrl-C): exit 0 and no process of it left."""
    pids = [int(p) for p in re.findall(r"process started with pid \[(\d+)\]", log_path.read_text())]
    os.killpg(launched.pid, signal.SIGINT)
    try:
        code = launched.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(launched.pid, signal.SIGKILL)
        raise AssertionError("launch did not stop within 30 s of SIGINT:\n" + log_path.read_text()[-3000:])
    finally:
        close_terminal(launched)
    assert pids, log_path.read_text()[-3000:]
    left = [p for p in pids if Path(f"/proc/{p}").exists()]
    assert code == 0, f"launch exit code {code}:\n{log_path.read_text()[-3000:]}"
    assert not left, f"processes left after SIGINT: {left}"
    assert log_path.read_text().count("process has finished cleanly") == len(pids)


@pytest.mark.slow
@pytest.mark.ros
@needs_launch
def test_colcon_build_and_launch_with_a_params_file(tmp_path, ros_env):
    """Plain colcon build; a user's params file (node-name independent '/**' key) sets the image
    topic and the backend: both take effect under the launch file with sample_camera:=true."""
    install = colcon_build(tmp_path / "ws")
    check_install(install)
    params = tmp_path / "my_params.yaml"
    params.write_text("/**:\n  ros__parameters:\n    image_topic: /test_cam/color/image_raw\n"
                      "    camera_info_topic: /test_cam/color/camera_info\n    backend: torch\n")
    log_path = tmp_path / "launch.log"
    launched = launch(install, log_path, ros_env, "sample_camera:=true", f"params_file:={params}")
    try:
        poses, diag, graph = receive("/human_pose_3d", launched, log_path)
    finally:
        stop(launched, log_path)
    assert diag["backend"].startswith("torch"), diag["backend"]              # the params file's backend
    assert "diffpose_pose_node" in graph.get("/test_cam/color/image_raw", []), graph   # and its topic
    assert "/image" not in graph
    assert poses[-1].header.frame_id == "camera_optical_frame"
    # rviz:=true without rviz2: said up front, nothing started
    out = subprocess.run(["bash", "-c", f"source {install / 'setup.bash'} && ros2 launch diffpose_ros pose.launch.py "
                          "rviz:=true sample_camera:=true"], env=dict(ros_env, PATH=f"{VENV / 'bin'}:{os.environ['PATH']}"),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "rviz2 is not installed" in out.stdout + out.stderr, out.stdout + out.stderr
    assert "process started" not in out.stdout + out.stderr
    # the detector export is a command of the install space (up to date here: nothing to do)
    out = subprocess.run(["bash", "-c", f"source {install / 'setup.bash'} && ros2 run diffpose_ros export_detector"],
                         env=dict(ros_env, PATH=f"{VENV / 'bin'}:{os.environ['PATH']}"), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and '"onnx"' in out.stdout and str(install) in out.stdout, out.stdout + out.stderr


@pytest.mark.slow
@pytest.mark.ros
@needs_launch
def test_symlink_install_and_launch_in_a_namespace(tmp_path, ros_env):
    """--symlink-install (executables are links: their targets must be executable); the default
    params file, a namespace: relative topics follow it; the bundled temporal model by name."""
    install = colcon_build(tmp_path / "ws", "--symlink-install")
    check_install(install)
    assert (install / "diffpose_ros" / "lib" / "diffpose_ros" / "pose_node").is_symlink()
    log_path = tmp_path / "launch.log"
    launched = launch(install, log_path, ros_env, "sample_camera:=true", "namespace:=/robot1",
                      "lifter_weights:=temporal")
    try:
        _, diag, graph = receive("/robot1/human_pose_3d", launched, log_path, n=1)
    finally:
        stop(launched, log_path)
    assert "diffpose_pose_node" in graph.get("/robot1/image", []), graph
    assert diag["frames_out"] != "0"
    assert diag["lifter"].startswith("temporal, 27 frames (") and diag["lifter"].endswith("weights/temporal)"), diag
