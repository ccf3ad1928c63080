"""The node changes num_hypotheses and diffusion_steps through the parameter service while
images flow at 10 Hz: no output gap longer than 0.5 s for an N change, the first output with a
new setting carries it in its message fields, and a new step count is built in the background
(the old graph serves meanwhile) and switched to between two frames."""
import gc
import sys
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
sys.path.insert(0, str(Path(__file__).parent))
from node_harness import RELIABLE, NodeHarness, image_msg, load_image  # noqa: E402

from diffpose_ros.msg import HumanPose3DArray  # noqa: E402
from diffpose_ros.paths import WEIGHTS_DIR  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow, pytest.mark.skipif(
    not (WEIGHTS_DIR / "detector" / "yolo11n-pose.onnx").exists(), reason="detector ONNX not exported (run setup)")]

PERIOD_S = 0.1           # the camera: 10 Hz
MAX_GAP_S = 0.5          # what an N change may cost the output stream, at most
# On a CPU so loaded that the node's output has gaps over 0.5 s without any change (measured
# before the first change), the bound is 1.5x that natural gap: the test then still fails when
# a change costs the stream more than the load alone does, and prints both numbers.
LOAD_MARGIN = 1.5
# This test process is also the camera: when it stalls (a garbage collection over everything
# the earlier tests left in it, the CPU taken by another process), no image is sent and the
# node's output stops for that long too. The stall beyond the camera period is measured
# from the publish times and not counted against the node.


@pytest.fixture(scope="module")
def ros():
    rclpy.init()
    yield
    rclpy.shutdown()


def stamp_ns(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


class Camera10Hz:
    """Publishes one photo at 10 Hz with increasing stamps, records every output, and calls
    the node's parameter service while doing so."""

    def __init__(self, harness: NodeHarness):
        from rcl_interfaces.srv import SetParameters

        self.h = harness
        self.msg = image_msg(load_image("basketball1.png"), sec=0)
        self.sent = {}            # stamp (ns) -> monotonic time it was published
        self.outputs = []         # (arrival, stamp ns, N, steps)
        self.changes = []         # (name, value, t_request, t_done)
        self.building_seen = []   # diagnostics values of sampler_building while building
        harness.node.create_subscription(HumanPose3DArray, "/human_pose_3d", self._on_pose, RELIABLE)
        self.client = harness.node.create_client(SetParameters, f"/{harness.name}/set_parameters")
        assert self.client.wait_for_service(timeout_sec=10)
        self._next = time.monotonic()
        self._count = 0

    def _on_pose(self, msg):
        if msg.people:
            self.outputs.append((time.monotonic(), stamp_ns(msg.header.stamp),
                                 msg.people[0].num_hypotheses, msg.people[0].diffusion_steps))
            assert len({(p.num_hypotheses, p.diffusion_steps) for p in msg.people}) == 1

    def _tick(self):
        now = time.monotonic()
        if now >= self._next:
            self._count += 1
            stamp = self.msg.header.stamp
            stamp.sec, stamp.nanosec = 5000 + self._count // 10, (self._count % 10) * 100_000_000
            self.h.pub_image.publish(self.msg)
            self.sent[stamp_ns(stamp)] = now
            self._next += PERIOD_S
        rclpy.spin_once(self.h.node, timeout_sec=max(0.0, min(0.02, self._next - time.monotonic())))
        building = self.h.latest_values().get("sampler_building", "none")
        if building != "none":
            self.building_seen.append(building)

    def flow(self, seconds=None, until=None, timeout=150.0, what="the node"):
        t0 = time.monotonic()
        while True:
            if seconds is not None and time.monotonic() - t0 >= seconds:
                return
            if until is not None and until():
                return
            assert self.h.alive(), f"node died:\n{self.h.log()[-3000:]}"
            assert time.monotonic() - t0 < timeout, f"timed out waiting for {what}:\n{self.h.log()[-3000:]}"
            self._tick()

    def set(self, name, value):
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter
        t_request = time.monotonic()
        fut = self.client.call_async(SetParameters.Request(
            parameters=[Parameter(name, value=value).to_parameter_msg()]))
        self.flow(until=fut.done, timeout=10, what=f"set {name}")
        assert fut.result().results[0].successful, fut.result().results[0].reason
        self.changes.append((name, value, t_request, time.monotonic()))

    def after(self, t0, t1=float("inf")):
        """Outputs for images published between t0 and t1."""
        return [o for o in self.outputs if t0 < self.sent[o[1]] < t1]

    def max_gap(self, t0, t1):
        arrivals = [t0] + [o[0] for o in self.outputs if t0 <= o[0] <= t1] + [t1]
        return max(np.diff(arrivals))

    def camera_stall(self, t0, t1):
        """How much longer than one period the camera itself went without sending, in [t0, t1]."""
        sent = sorted(t for t in self.sent.values() if t0 <= t <= t1)
        return max(0.0, max(np.diff(sent), default=0.0) - PERIOD_S)


@pytest.fixture
def no_gc_pauses():
    """The objects of the earlier tests are frozen out of the collector and collection is off
    while the camera runs, so that the test's own pauses do not show up as the node's gaps."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


def test_n_and_steps_change_while_images_flow_at_10hz(ros, ros_env, tmp_path, no_gc_pauses):
    env = dict(ros_env, DIFFPOSE_CACHE=str(tmp_path / "cache"))   # steps=3 is not built yet
    node = NodeHarness(env, tmp_path / "node.log", name="pose_node_settings")
    try:
        node.send_info(640, 480)
        cam = Camera10Hz(node)
        cam.flow(until=lambda: cam.outputs, timeout=60, what="the first output")
        t_first = time.monotonic()
        cam.flow(seconds=5.0)
        assert all(o[2:] == (5, 5) for o in cam.outputs)
        natural = cam.max_gap(t_first, time.monotonic())
        limit = max(MAX_GAP_S, LOAD_MARGIN * natural)
        report = [f"before any change: {len(cam.outputs)} outputs, max gap {natural:.2f} s "
                  f"-> gap limit {limit:.2f} s"]

        n_changes = (3, 12, 2, 8)
        for n in n_changes:
            cam.set("num_hypotheses", n)
            cam.flow(seconds=2.0)
        cam.set("diffusion_steps", 3)
        cam.flow(until=lambda: any(o[3] == 3 for o in cam.outputs), what="outputs with 3 steps")
        switched = next(o[0] for o in cam.outputs if o[3] == 3)
        cam.flow(seconds=2.0)
        cam.set("num_hypotheses", 6)
        cam.flow(seconds=2.0)

        changes = cam.changes + [("end", None, time.monotonic(), time.monotonic())]
        for (name, value, t_req, t_done), nxt in zip(changes, changes[1:]):
            outs = cam.after(t_done, nxt[2])
            assert len(outs) >= 2, f"{name}={value}: only {len(outs)} outputs"
            field = 2 if name == "num_hypotheses" else 3
            if name == "num_hypotheses":
                # an image sent after the change and lifted before the next one carries the new N
                # (a loaded node may lift a late image after the next change: not counted here)
                done = [o for o in outs if o[0] < nxt[2]]
                assert done and all(o[2] == value for o in done), (name, value, [o[2] for o in outs])
                gap = cam.max_gap(t_req - 1.0, t_done + 1.5)
                stall = cam.camera_stall(t_req - 1.0, t_done + 1.5)
                report.append(f"N -> {value}: max gap {gap:.2f} s (camera stalled {stall:.2f} s), "
                              f"{len(outs)} outputs")
                assert gap <= limit + stall, f"N -> {value}: output gap {gap:.2f} s; " + "; ".join(report)
            else:
                # built in the background: the 5-step graph served meanwhile, then 3 steps only
                steps = [o[field] for o in cam.outputs if o[0] >= t_req]
                first3 = steps.index(3)
                assert set(steps[:first3]) <= {5} and set(steps[first3:]) == {3}, steps
                assert steps[:first3], "the old graph served while the new one was built"
                gap = cam.max_gap(t_req - 1.0, switched + 1.5)
                stall = cam.camera_stall(t_req - 1.0, switched + 1.5)
                report.append(f"steps -> 3: built in {switched - t_done:.1f} s while "
                              f"{first3} outputs came from the 5-step graph, max gap {gap:.2f} s "
                              f"(camera stalled {stall:.2f} s)")
                assert gap <= 2 * limit + stall, f"steps -> 3: output gap {gap:.2f} s; " + "; ".join(report)
        assert any(b.startswith("steps=3") for b in cam.building_seen)
        diag = node.counters()
        assert diag["diffusion_steps"] == "3" and diag["num_hypotheses"] == "6"
        assert diag["mirror_image"] == "on"   # the bundled frame model lifts half from the mirror image
        assert "steps=3: sampler_s3_" in diag["sampler_graph"] and diag["sampler_building"] == "none"
        print("\n".join(report))
    finally:
        assert node.close() == 0
