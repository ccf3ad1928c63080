"""SIGINT at 10 different moments, spread over start-up, the first frame, a running export and
steady state: the node exits with 0 within 2 s every time, leaves no process behind and no
half-written file in its cache, and a later start uses that cache. Once with the node as a
plain process, once under `ros2 launch` with the real launch system (../shared/ros-launch):
SIGINT to the launch's process group, as Ctrl-C in a terminal does."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy")
sys.path.insert(0, str(Path(__file__).parent))
from launch_terminal import close_terminal, start_launch  # noqa: E402
from node_harness import RELIABLE, image_msg, load_image  # noqa: E402
from test_backends_child import process_gone  # noqa: E402

from diffpose_ros.backends.export import read_metadata  # noqa: E402
from diffpose_ros.paths import WEIGHTS_DIR  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)
DETECTOR = WEIGHTS_DIR / "detector" / "yolo11n-pose.onnx"
STOP_WITHIN_S = 2.0

pytestmark = [pytest.mark.ros, pytest.mark.slow,
              pytest.mark.skipif(not DETECTOR.exists(), reason="detector ONNX not exported (run setup)")]

PARAMS = {"backend": "onnxruntime", "qos_reliability": "reliable", "qos_depth": 5,
          "camera_info_timeout_s": 0.5, "diagnostics_period_s": 0.2,
          "detector_model": str(DETECTOR)}


@pytest.fixture(scope="module")
def ros():
    rclpy.init()
    yield
    rclpy.shutdown()


def processes_mentioning(text: str) -> list[int]:
    """pids of running (not zombie) processes whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and not process_gone(int(entry.name)):
            found.append(int(entry.name))
    return found


class Run:
    """One start of the node, plainly or under `ros2 launch`, with a test camera."""

    def __init__(self, mode: str, env: dict, log: Path, workspace: Path | None, name: str):
        self.mode, self.log_path, self.name = mode, log, "diffpose_pose_node"
        self.t_start = time.monotonic()
        out = open(log, "w")
        if mode == "direct":
            cmd = [sys.executable, "-m", "diffpose_ros.ros.node", "--ros-args"]
            for key, value in PARAMS.items():
                cmd += ["-p", f"{key}:={value}"]
            self.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        else:
            params = log.with_suffix(".yaml")
            params.write_text("diffpose_pose_node:\n  ros__parameters:\n" + "".join(
                f"    {k}: {v}\n" for k, v in PARAMS.items() if k not in ("backend", "detector_model")))
            launch = (f"source {workspace / 'install' / 'setup.bash'} && exec ros2 launch diffpose_ros "
                      f"pose.launch.py backend:={PARAMS['backend']} detector_model:={DETECTOR} "
                      f"params_file:={params}")
            self.proc = start_launch(launch, env, out)   # a terminal on stdin: launch_terminal.py
        self.client = rclpy.create_node(f"stop_test_{name}")
        from diffpose_ros.msg import HumanPose3DArray
        from sensor_msgs.msg import CameraInfo, Image
        self.poses = []
        self.client.create_subscription(HumanPose3DArray, "/human_pose_3d", self.poses.append, RELIABLE)
        self.pub_image = self.client.create_publisher(Image, "/image", RELIABLE)  # the node's default (relative) topics
        self.pub_info = self.client.create_publisher(CameraInfo, "/camera_info", 10)
        self.image = image_msg(load_image("basketball1.png"), sec=1)
        self.frames = 0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def node_pid(self) -> int | None:
        if self.mode == "direct":
            return self.proc.pid
        m = re.search(r"\[pose_node-\d+\]: process started with pid \[(\d+)\]", self.log())
        return int(m.group(1)) if m else None

    def wait_for(self, text: str, timeout: float = 600.0, count: int = 1, frames: bool = False):
        """Spin (publishing frames at 10 Hz with ``frames``) until ``text`` is in the log
        ``count`` times."""
        deadline = time.monotonic() + timeout
        while self.log().count(text) < count:
            assert self.proc.poll() is None, f"exited waiting for {text!r}:\n{self.log()[-3000:]}"
            assert time.monotonic() < deadline, f"timed out waiting for {text!r}:\n{self.log()[-3000:]}"
            self.spin(0.1, frames)

    def spin(self, seconds: float, frames: bool = False):
        end = time.monotonic() + seconds
        while True:
            if frames:
                self.send_frame()
            rclpy.spin_once(self.client, timeout_sec=0.02)
            if time.monotonic() >= end:
                return
            time.sleep(max(0.0, min(0.1, end - time.monotonic())) if frames else 0.0)

    def send_frame(self):
        from diffpose_ros.pipeline import Intrinsics
        from diffpose_ros.ros.sample_camera import camera_info
        if self.frames == 0:
            self.pub_info.publish(camera_info(Intrinsics.from_fov(640, 480, 60.0), self.image.header))
        self.frames += 1
        self.image.header.stamp.sec = 100 + self.frames
        self.pub_image.publish(self.image)

    def set_parameter(self, name, value):
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter
        client = self.client.create_client(SetParameters, f"/{self.name}/set_parameters")
        assert client.wait_for_service(timeout_sec=20)
        fut = client.call_async(SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()]))
        deadline = time.monotonic() + 20
        while not fut.done():
            assert time.monotonic() < deadline
            self.spin(0.1, frames=True)
        assert fut.result().results[0].successful

    def sigint(self, again_after: float | None = None) -> float:
        """SIGINT (to the process group under launch); seconds until the node process ended."""
        pid = self.node_pid()
        assert pid is not None, self.log()[-2000:]
        t0 = time.monotonic()
        send = (lambda: os.killpg(self.proc.pid, signal.SIGINT)) if self.mode == "launch" else \
            (lambda: self.proc.send_signal(signal.SIGINT))
        send()
        if again_after is not None:
            time.sleep(again_after)
            send()
        while not process_gone(pid) and time.monotonic() - t0 < 10:
            time.sleep(0.01)
        took = time.monotonic() - t0
        self.code = self.proc.wait(timeout=20)
        if self.mode == "launch":
            close_terminal(self.proc)
        self.client.destroy_node()
        return took


def stop_at(run: Run, moment: str):
    """Bring the run to ``moment`` and send SIGINT there; returns the stop time (s)."""
    if moment == "imports":
        # inside the node module's imports: numpy's core is being loaded (nothing before
        # diffpose_ros/ros/node.py imports numpy). Earlier, while the interpreter itself starts,
        # a SIGINT is Python's default KeyboardInterrupt: no project code runs yet to catch it.
        if run.mode == "launch":
            run.wait_for("process started with pid", timeout=60)
        maps = Path(f"/proc/{run.node_pid()}/maps")
        deadline = time.monotonic() + 60
        while "_multiarray_umath" not in maps.read_text(errors="replace"):
            assert time.monotonic() < deadline and run.proc.poll() is None
            time.sleep(0.005)
    elif moment == "spinning, detector loading":
        run.wait_for("listening on")
    elif moment == "export at start-up, child just started":
        run.wait_for("running in child process")
    elif moment == "export at start-up, mid-way":
        run.wait_for("running in child process")
        time.sleep(1.5)
    elif moment == "cache hit, lifter loading":
        run.wait_for("reusing ONNX sampler")
    elif moment == "models loaded, idle":
        run.wait_for("models loaded")
    elif moment == "first frame":
        run.wait_for("models loaded")
        run.send_frame()      # CameraInfo, then the first image: let the info land first
        run.spin(0.4)
        run.send_frame()
        rclpy.spin_once(run.client, timeout_sec=0.03)
    elif moment == "steady state":
        run.wait_for("models loaded")
        run.spin(0.1, frames=True)
        deadline = time.monotonic() + 60
        while len(run.poses) < 10:
            assert time.monotonic() < deadline, run.log()[-3000:]
            run.spin(0.1, frames=True)
    elif moment == "background export":
        run.wait_for("models loaded")
        deadline = time.monotonic() + 60
        while not run.poses:  # the first frame (detector warm-up) takes seconds on a loaded CPU
            assert time.monotonic() < deadline, run.log()[-3000:]
            run.spin(0.1, frames=True)
        before = run.log().count("running in child process")
        run.set_parameter("diffusion_steps", 2)      # not in the cache: exported in the background
        run.wait_for("running in child process", count=before + 1, frames=True)
        n0, deadline = len(run.poses), time.monotonic() + 30
        while len(run.poses) <= n0 and "exported ONNX sampler (steps=2" not in run.log():
            assert time.monotonic() < deadline, run.log()[-3000:]
            run.spin(0.1, frames=True)
        assert len(run.poses) > n0, "frames kept flowing during the background export"
        assert "exported ONNX sampler (steps=2" not in run.log(), "the export ended too soon"
    elif moment == "twice, steady state":
        run.wait_for("models loaded")
        run.spin(2.0, frames=True)
        return run.sigint(again_after=0.05)
    else:
        raise ValueError(moment)
    return run.sigint()


# cold: a cache of its own, so that the start-up exports; warm: the module's shared cache
MOMENTS = [("imports", "warm"), ("spinning, detector loading", "warm"),
           ("export at start-up, child just started", "cold"), ("export at start-up, mid-way", "cold"),
           ("models loaded, idle", "warm"), ("cache hit, lifter loading", "warm"), ("first frame", "warm"),
           ("steady state", "warm"), ("background export", "warm"), ("twice, steady state", "warm")]


def check_cache(cache: Path):
    """Only complete graphs: no partial or temporary file, and every .onnx reads back."""
    folder = cache / "samplers"
    files = sorted(folder.iterdir()) if folder.exists() else []
    assert all(f.suffix == ".onnx" for f in files), [f.name for f in files]
    for f in files:
        assert read_metadata(f)["hypotheses"] == "dynamic"


def stop_series(mode: str, ros_env: dict, tmp_path: Path, workspace: Path | None):
    warm = tmp_path / "cache"
    results = []
    for i, (moment, cache_kind) in enumerate(MOMENTS):
        cache = warm if cache_kind == "warm" else tmp_path / f"cold{i}"
        env = dict(ros_env, DIFFPOSE_CACHE=str(cache))
        if mode == "launch":
            env.update(PATH=f"{VENV / 'bin'}:{os.environ['PATH']}", AMENT_PREFIX_PATH=str(VENV))
        run = Run(mode, env, tmp_path / f"{mode}{i}.log", workspace, f"{mode}{i}")
        took = stop_at(run, moment)
        text = run.log()
        results.append(f"{moment}: exit {run.code}, node gone {took:.2f} s after SIGINT")
        # A second Ctrl-C may reach `ros2 launch` itself while it exits after the node finished
        # cleanly; upstream launch then dies of that SIGINT (-2). What this test owns is the node:
        # it must have finished cleanly (checked below); the launch's own -2 is accepted only then.
        ok = (0, -signal.SIGINT) if mode == "launch" and moment.startswith("twice") else (0,)
        assert run.code in ok, f"{moment}: exit {run.code}\n{text[-3000:]}"
        assert took < STOP_WITHIN_S, f"{moment}: the node took {took:.2f} s to stop\n{text[-3000:]}"
        assert "terminate called" not in text and "Traceback" not in text, text[-3000:]
        if mode == "launch":
            assert re.search(r"\[pose_node-\d+\]: process has finished cleanly", text), text[-3000:]
        # an export child was SIGKILLed and reaped (up to 0.5 s) before the node exited; one that
        # the loaded kernel is still tearing down gets 1 s more to vanish
        children = [int(pid) for pid in re.findall(r"running in child process (\d+)", text)]
        deadline = time.monotonic() + 1.0
        while (any(not process_gone(pid) for pid in children) or processes_mentioning(str(cache))) \
                and time.monotonic() < deadline:
            time.sleep(0.02)
        for pid in children:
            assert process_gone(pid), f"{moment}: export child {pid} left behind"
        assert processes_mentioning(str(cache)) == [], f"{moment}: a process still uses {cache}"
        check_cache(cache)
        if moment == "background export":
            assert "sampler_s2_" not in " ".join(p.name for p in (cache / "samplers").iterdir())
    # the cache is intact: a later start reuses it
    run = Run(mode, dict(env, DIFFPOSE_CACHE=str(warm)), tmp_path / f"{mode}_final.log", workspace, f"{mode}_f")
    run.wait_for("models loaded")
    assert "reusing ONNX sampler" in run.log() and "exporting ONNX sampler" not in run.log()
    assert run.sigint() < STOP_WITHIN_S and run.code == 0
    print(f"\n{mode}:\n" + "\n".join(results))


def test_sigint_at_ten_moments(ros, ros_env, tmp_path):
    stop_series("direct", ros_env, tmp_path, None)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A colcon workspace with this checkout (without its venv) built against the venv."""
    if shutil.which("colcon", path=str(VENV / "bin")) is None or not (VENV / "bin" / "ros2").exists():
        pytest.skip("colcon or ros2 launch not in the venv (setup installs them from ../shared/ros-launch)")
    ws = tmp_path_factory.mktemp("ws")
    shutil.copytree(REPO, ws / "src" / "diffpose_ros", ignore=shutil.ignore_patterns(
        ".venv*", ".git", "build", "install", "log", "out", "__pycache__", "*.onnx", "docs"))
    env = dict(os.environ, PATH=f"{VENV / 'bin'}:{os.environ['PATH']}", CMAKE_PREFIX_PATH=str(VENV),
               AMENT_PREFIX_PATH=str(VENV))
    subprocess.run(["colcon", "build", "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}",
                    "-DBUILD_TESTING=OFF"], cwd=ws, env=env, check=True, stdout=subprocess.PIPE,
                   stderr=subprocess.STDOUT, timeout=1500)
    return ws


def test_sigint_at_ten_moments_under_ros2_launch(ros, ros_env, tmp_path, workspace):
    stop_series("launch", ros_env, tmp_path, workspace)
