"""The pose node end to end (real detector, real lifter, real DDS), its bad-input handling,
run-time parameters and shutdown. The node runs in its own process; this process is the camera
and an independent subscriber."""
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
sys.path.insert(0, str(Path(__file__).parent))
from node_harness import NodeHarness, image_msg, load_image  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

from diffpose_ros.paths import WEIGHTS_DIR  # noqa: E402
from diffpose_ros.skeleton import H36M_JOINTS  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.skipif(
    not (WEIGHTS_DIR / "detector" / "yolo11n-pose.onnx").exists(), reason="detector ONNX not exported (run setup)")]


@pytest.fixture(scope="module")
def ros():
    rclpy.init()
    yield
    rclpy.shutdown()


@pytest.fixture(scope="module")
def node(ros, ros_env, tmp_path_factory):
    harness = NodeHarness(ros_env, tmp_path_factory.mktemp("node") / "node.log")
    yield harness
    if harness.alive():
        harness.close()


def test_dds_profile_variable_is_the_one_this_fast_dds_reads():
    """Fast DDS 3 (Kilted) reads FASTDDS_DEFAULT_PROFILES_FILE, Fast DDS 2 (Jazzy) only the
    older FASTRTPS_ name: the session's large shared-memory profile must be set under the right one."""
    import importlib.metadata as md
    import os
    from diffpose_ros.tools.demo import fastdds_profiles_variable
    names = {d.metadata["Name"]: d.version for d in md.distributions()}
    major = int((names.get("ros-fastdds") or names["ros-fastrtps"]).split(".")[0])
    expected = "FASTDDS_DEFAULT_PROFILES_FILE" if major >= 3 else "FASTRTPS_DEFAULT_PROFILES_FILE"
    assert fastdds_profiles_variable() == expected
    assert os.environ[expected].endswith("config/fastdds.xml")        # set by conftest for the session


def test_visual_mailbox_keeps_the_newest_frame_and_every_deletion():
    """The markers skip to the newest frame when they fall behind, but the tracks that ended in a
    skipped frame are still deleted; take() waits for a frame and returns None once closed."""
    import threading
    from diffpose_ros.ros.node import VisualFrame, VisualMailbox
    box = VisualMailbox()
    box.put(VisualFrame("h1", [], [3], True, 0.5))
    box.put(VisualFrame("h2", [], [7], True, 0.5))
    frame = box.take()
    assert (frame.header, frame.removed_ids, box.skipped) == ("h2", [3, 7], 1)
    got = []
    taker = threading.Thread(target=lambda: got.append(box.take()))
    taker.start()
    time.sleep(0.1)
    assert not got                                    # waits for the next frame
    box.put(VisualFrame("h3", [], [], True, 0.5))
    taker.join(timeout=5)
    assert got[0].header == "h3" and got[0].removed_ids == [] and box.skipped == 1
    taker = threading.Thread(target=lambda: got.append(box.take()))
    taker.start()
    box.close()
    taker.join(timeout=5)
    assert not taker.is_alive() and got[-1] is None


def test_rectified_images_are_recognised_by_their_topic_name():
    from diffpose_ros.ros.node import is_rectified_topic
    assert is_rectified_topic("/camera/image_rect") and is_rectified_topic("/cam/image_rect_color/compressed")
    assert not is_rectified_topic("/camera/image_raw") and not is_rectified_topic("/image")
    assert not is_rectified_topic("/camera/image_rect/../image")   # only the last name counts


def check_people(msg, image, min_people=1):
    """Every field of a published array: header, joints, finite positions in front, PSD covariances."""
    assert msg.header.frame_id == "camera_optical_frame"
    assert len(msg.people) >= min_people
    assert 0 < msg.processing_latency.sec + msg.processing_latency.nanosec * 1e-9 < 30
    h, w = image.shape[:2]
    for p in msg.people:
        assert (p.header.stamp.sec, p.header.stamp.nanosec) == (msg.header.stamp.sec, msg.header.stamp.nanosec)
        assert list(p.joint_names) == list(H36M_JOINTS)
        pos = np.array([[q.x, q.y, q.z] for q in p.positions])
        assert pos.shape == (17, 3) and np.isfinite(pos).all()
        assert (pos[:, 2] > 0.2).all(), "joints must be in front of the camera"
        cov = np.reshape(p.covariance, (17, 3, 3))
        assert np.isfinite(cov).all() and np.allclose(cov, np.swapaxes(cov, 1, 2))
        assert np.linalg.eigvalsh(cov).min() >= 0
        rc = np.reshape(p.root_covariance, (3, 3))
        assert np.allclose(rc, rc.T) and np.linalg.eigvalsh(rc).min() >= 0
        np.testing.assert_allclose([p.root.x, p.root.y, p.root.z], pos[0], atol=1e-6)
        kp = np.reshape(p.keypoints_2d, (17, 2))
        conf = np.asarray(p.keypoint_confidence)
        seen = conf > 0.5
        assert ((kp[seen] >= -1) & (kp[seen] <= [w + 1, h + 1])).all()
        assert 0 <= p.score <= 1 and (0 <= conf).all() and (conf <= 1).all()
        assert p.num_hypotheses >= 2 and p.diffusion_steps >= 1


def main_person(msg):
    """The person of a message with the tallest keypoint extent (the full-body player)."""
    return max(msg.people, key=lambda p: np.ptp(np.reshape(p.keypoints_2d, (17, 2))[:, 1]))


def test_people_on_real_photos_with_stable_ids(node):
    b1, b2, messi = load_image("basketball1.png"), load_image("basketball2.png"), load_image("messi5.jpg")
    node.send_info(640, 480)
    node.send(image_msg(b1, sec=100))
    m1 = node.pose_for(100)
    check_people(m1, b1)
    node.send(image_msg(b2, sec=101))
    m2 = node.pose_for(101)
    check_people(m2, b2)
    # the full-body player (largest keypoint extent) keeps the id from one frame to the next
    assert main_person(m1).track_id == main_person(m2).track_id
    node.send_info(messi.shape[1], messi.shape[0])
    time.sleep(0.2)
    node.send(image_msg(messi, sec=102))
    check_people(node.pose_for(102), messi)


def test_markers_for_a_subscriber(node):
    """The node builds its RViz markers only while someone subscribes, reusing each track's
    markers from frame to frame: every frame's markers carry that frame's stamp and poses."""
    from visualization_msgs.msg import Marker, MarkerArray
    arrays = []
    sub = node.node.create_subscription(MarkerArray, "/human_pose_3d/markers", arrays.append, 10)
    b1, b2 = load_image("basketball1.png"), load_image("basketball2.png")
    node.send_info(640, 480)
    sec = 110
    while not arrays:                       # until the node has discovered the subscription
        assert sec < 160, "no MarkerArray although subscribed"
        node.send(image_msg(b1, sec=sec))
        node.pose_for(sec)
        node.spin_for(0.3)
        sec += 1
    for image in (b2, b1):                  # the same tracks again: the reused markers move
        node.send(image_msg(image, sec=sec))
        pose = node.pose_for(sec)
        node.spin_until(lambda: any(a.markers and a.markers[-1].header.stamp.sec == sec for a in arrays),
                        10, f"the markers of stamp {sec}")
        markers = next(a for a in arrays if a.markers and a.markers[-1].header.stamp.sec == sec).markers
        adds = [m for m in markers if m.action == Marker.ADD]
        assert all(m.header.stamp.sec == sec and m.header.frame_id == "camera_optical_frame" for m in adds)
        assert {m.ns for m in adds} == {f"person_{p.track_id}" for p in pose.people}
        for p in pose.people:
            mine = {m.id: m for m in adds if m.ns == f"person_{p.track_id}"}
            assert sum(m.type == Marker.SPHERE and 10 <= m.id < 27 for m in mine.values()) == 17
            joints = [[q.x, q.y, q.z] for q in mine[1].points]
            np.testing.assert_allclose(joints, [[q.x, q.y, q.z] for q in p.positions], atol=1e-6)
        sec += 1
    node.node.destroy_subscription(sub)


def test_debug_image_from_the_visual_thread(node):
    """publish_debug_image at run time: the annotated image of each frame, with its stamp, comes
    from the visual-output thread (its time is the diagnostics' visual stage, not the worker's
    overhead)."""
    from rclpy.qos import qos_profile_sensor_data
    images = []
    sub = node.node.create_subscription(Image, "/human_pose_3d/debug_image", images.append,
                                   qos_profile_sensor_data)     # the node's QoS for images
    b1 = load_image("basketball1.png")
    node.send_info(640, 480)
    assert node.set_params(publish_debug_image=True).successful
    sec = 170
    while not any(m.header.stamp.sec == sec - 1 for m in images):   # until the subscription matched
        assert sec < 190, "no debug image although publish_debug_image is on"
        node.send(image_msg(b1, sec=sec))
        node.pose_for(sec)
        node.spin_for(0.5)
        sec += 1
    shown = next(m for m in images if m.header.stamp.sec == sec - 1)
    assert (shown.width, shown.height, shown.encoding) == (640, 480, "bgr8")
    drawn = np.frombuffer(bytes(shown.data), np.uint8).reshape(480, shown.step)[:, :640 * 3].reshape(480, 640, 3)
    assert (drawn != b1).any(), "the skeletons are drawn on the image"
    counters = node.counters()
    assert float(counters["visual_p50_ms"]) > 0 and int(counters.get("processing_visual_error", 0)) == 0
    assert node.set_params(publish_debug_image=False).successful
    node.node.destroy_subscription(sub)


def test_bad_inputs_are_survived_and_counted(node):
    good = load_image("basketball1.png")
    node.send_info(640, 480)
    sec = 200

    def good_frame():
        nonlocal sec
        sec += 1
        node.send(image_msg(good, sec=sec))
        check_people(node.pose_for(sec), good)

    good_frame()
    bad_stamps = []

    def bad(msg, kind):
        nonlocal sec
        sec += 1
        msg.header.stamp.sec = sec
        bad_stamps.append(sec)
        node.send(msg)
        time.sleep(0.3)
        good_frame()
        counters = node.counters()
        assert int(counters.get(kind, 0)) >= 1, (kind, counters)

    short = image_msg(good, 0); short.data = short.data[: len(short.data) // 2]
    bad(short, "bad_image")                                         # data shorter than step*height
    wrong_step = image_msg(good, 0); wrong_step.step = 100
    bad(wrong_step, "bad_image")                                    # step < width*3
    bad(Image(width=0, height=0, step=0, encoding="bgr8"), "bad_image")                      # zero size
    bad(Image(width=8000, height=8000, step=24000, encoding="bgr8", data=b"\0" * 64), "bad_image")  # huge
    unknown = image_msg(good, 0); unknown.encoding = "32FC1"
    bad(unknown, "bad_image")                                       # unknown encoding
    assert "unsupported encoding '32FC1'" in node.log()
    # CameraInfo with a zero or NaN focal length is ignored (the last good one stays in use)
    for K in ([[0, 0, 320], [0, 0, 240], [0, 0, 1]], [[np.nan, 0, 320], [0, np.nan, 240], [0, 0, 1]]):
        node.send_info(640, 480, K=K)
        time.sleep(0.2)
        good_frame()
    assert int(node.counters()["bad_camera_info"]) >= 2
    # a late frame (older than the last by less than time_jump_s) and a repeated stamp are skipped
    late = (sec - 1, 400_000_000)
    node.send(image_msg(good, *late))
    time.sleep(0.3)
    node.send(image_msg(good, sec=sec))
    time.sleep(0.3)
    good_frame()
    counters = node.counters()
    assert int(counters["stamp_out_of_order"]) >= 1 and int(counters["stamp_repeated"]) >= 1
    assert int(counters.get("time_jumps", 0)) == 0
    # nothing was published for any bad input
    published = {m.header.stamp.sec for m in node.poses}
    assert not published & set(bad_stamps)
    assert not [m for m in node.poses if (m.header.stamp.sec, m.header.stamp.nanosec) == late]
    assert sum(1 for m in node.poses if m.header.stamp.sec == sec) == 1
    assert node.alive()


def test_burst_of_1000_frames_in_one_second(node):
    grey = cv2.cvtColor(load_image("basketball1.png"), cv2.COLOR_BGR2GRAY)
    node.send_info(640, 480)
    before = int(node.counters().get("dropped_stale", 0))
    msg = Image(height=480, width=640, encoding="mono8", step=640, data=grey.tobytes())
    msg.header.frame_id = "camera_optical_frame"
    t0 = time.monotonic()
    for i in range(1000):
        msg.header.stamp.sec, msg.header.stamp.nanosec = 1000 + i // 1000, (i % 1000) * 1_000_000
        node.pub_image.publish(msg)
    sent_in = time.monotonic() - t0
    node.send(image_msg(load_image("basketball1.png"), sec=2000))
    check_people(node.pose_for(2000, timeout=120), grey)
    counters = node.counters()
    assert int(counters["dropped_stale"]) > before, counters
    assert node.alive()
    print(f"1000 frames published in {sent_in:.2f} s; counters {counters}")


def test_runtime_parameters_validated(node):
    bad = node.set_params(detector_score_threshold=1.5)
    assert not bad.successful and "detector_score_threshold" in bad.reason
    assert not node.set_params(backend="torch").successful                 # read-only at run time
    assert node.set_params(num_hypotheses=8).successful
    assert node.set_params(diffusion_steps=2).successful
    node.send_info(640, 480)
    # N applies from the next frame; the 2-step graph is built in the background meanwhile
    # (the 5-step one serves until it is ready), see test_ros_settings.py
    img = load_image("basketball1.png")
    for sec in range(3000, 3600):
        node.send(image_msg(img, sec=sec))
        msg = node.pose_for(sec, timeout=60)
        assert msg.people and all(p.num_hypotheses == 8 for p in msg.people)
        if msg.people[0].diffusion_steps == 2:
            break
        assert msg.people[0].diffusion_steps == 5
        time.sleep(0.2)
    assert msg.people[0].diffusion_steps == 2


def test_camera_height_gives_the_size_from_the_floor(node):
    """camera_height_m / camera_pitch_deg set at run time: from the next frame the people are
    sized from their feet on the floor (size_from_floor, /diagnostics says so); 0 turns it off;
    a negative height is refused. (Stamps between the tests before and after: the node is shared
    and a repeated or much older stamp is a time jump.)"""
    node.send_info(640, 480)
    img = load_image("basketball1.png")
    node.send(image_msg(img, sec=3700))
    plain = node.pose_for(3700)
    assert plain.people and not any(p.size_from_floor for p in plain.people)
    assert not node.set_params(camera_height_m=-1.0).successful
    assert node.set_params(camera_height_m=1.5, camera_pitch_deg=5.0).successful
    node.send(image_msg(img, sec=3701))
    floor = node.pose_for(3701)
    check_people(floor, img)
    assert any(p.size_from_floor for p in floor.people)
    assert node.counters()["body_size"].startswith("from the floor (camera 1.50 m up, pitch 5.0 deg")
    roots = {p.track_id: p.root.z for p in plain.people}
    assert any(abs(p.root.z - roots[p.track_id]) > 1e-3 for p in floor.people if p.size_from_floor and p.track_id in roots)
    assert node.set_params(camera_height_m=0.0).successful
    node.send(image_msg(img, sec=3702))
    assert not any(p.size_from_floor for p in node.pose_for(3702).people)
    assert node.counters()["body_size"].startswith("typical adult")


def test_time_jump_back_resets_and_goes_on(node):
    """A stamp far older than the last (simulator reset, use_sim_time restart) is a jump back in
    time: the node resets tracker and temporal buffers, logs it, counts it, and publishes again."""
    b1, b2 = load_image("basketball1.png"), load_image("basketball2.png")
    node.send_info(640, 480)
    before = []
    for image, sec in ((b1, 4000), (b2, 4001)):
        node.send(image_msg(image, sec=sec))
        before.append(node.pose_for(sec))
    node.send(image_msg(b1, sec=40))                       # back by more than an hour
    after = node.pose_for(40)
    check_people(after, b1)
    node.send(image_msg(b2, sec=41))
    check_people(node.pose_for(41), b2)
    counters = node.counters()
    assert int(counters["time_jumps"]) == 1, counters
    assert "time jumped back from 4001.000000 to 40.000000" in node.log()
    old_ids = {p.track_id for m in before for p in m.people}
    assert old_ids and not {p.track_id for p in after.people} & old_ids, "no track continues across the jump"


def test_corrupt_compressed_images(ros, ros_env, tmp_path):
    node = NodeHarness(ros_env, tmp_path / "node.log", compressed=True, name="pose_node_compressed")
    try:
        img = load_image("basketball1.png")
        node.send_info(640, 480)
        ok, jpg = cv2.imencode(".jpg", img)
        node.send(CompressedImage(header=image_msg(img, 10).header, format="jpeg", data=jpg.tobytes()[:500]))
        time.sleep(0.3)
        node.send(CompressedImage(header=image_msg(img, 11).header, format="jpeg", data=jpg.tobytes()))
        check_people(node.pose_for(11), img)
        assert int(node.counters()["bad_image"]) == 1
        assert not [m for m in node.poses if m.header.stamp.sec == 10]
    finally:
        t0 = time.monotonic()
        code = node.close()
        assert code == 0 and time.monotonic() - t0 < 2.0, "clean shutdown on SIGINT within 2 s"


def test_bad_parameter_at_start_is_a_clear_error(ros, ros_env, tmp_path):
    import subprocess
    out = subprocess.run([sys.executable, "-m", "diffpose_ros.ros.node", "--ros-args", "-p", "backend:=tensorrt"],
                         env=ros_env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "tensorrt" in (out.stdout + out.stderr).lower()


@pytest.mark.parametrize("fault", ["missing weights", "corrupt weights", "corrupt detector", "missing detector"])
def test_model_faults_are_clear_errors_at_start(ros_env, tmp_path, fault):
    import shutil
    import subprocess
    params = []
    if fault == "missing weights":
        params = ["-p", f"lifter_weights:={tmp_path / 'nowhere'}"]
    elif fault == "corrupt weights":
        bundle = tmp_path / "frame"
        shutil.copytree(WEIGHTS_DIR / "frame", bundle, ignore=shutil.ignore_patterns("*.onnx"))
        (bundle / "model.pt").write_bytes(b"not a checkpoint" * 100)
        params = ["-p", f"lifter_weights:={bundle}"]
    elif fault == "corrupt detector":
        bad = tmp_path / "detector.onnx"
        bad.write_bytes(b"\x08\x07garbage" * 100)
        params = ["-p", f"detector_model:={bad}"]
    else:                                    # a user-given path that is not there: say so, no export hint
        params = ["-p", f"detector_model:={tmp_path / 'my_model.onnx'}"]
    out = subprocess.run([sys.executable, "-m", "diffpose_ros.ros.node", "--ros-args", *params],
                         env=ros_env, capture_output=True, text=True, timeout=120)
    text = out.stdout + out.stderr
    assert out.returncode == 2, text
    assert "cannot start" in text
    expected = {"missing weights": "nowhere", "corrupt weights": "model.pt", "corrupt detector": "detector.onnx",
                "missing detector": "my_model.onnx' does not exist"}[fault]
    assert expected in text, text
    assert "export" not in text or fault != "missing detector", text


def test_sigterm_and_restart_reuses_the_exported_sampler(ros, ros_env, tmp_path):
    """SIGTERM stops the node cleanly within 2 s; a restarted node reuses the ONNX export
    (the engine-cache path for TensorRT is the same load_or_export decision plus its own cache)."""
    import shutil
    import signal
    bundle = tmp_path / "frame"
    shutil.copytree(WEIGHTS_DIR / "frame", bundle, ignore=shutil.ignore_patterns("*.onnx"))
    env = dict(ros_env, DIFFPOSE_CACHE=str(tmp_path / "cache"))   # a cold cache of its own
    logs = []
    for run in range(2):
        node = NodeHarness(env, tmp_path / f"node{run}.log", params=[f"lifter_weights:={bundle}"],
                           name=f"pose_node_restart{run}")
        node.node.destroy_node()
        t0 = time.monotonic()
        node.proc.send_signal(signal.SIGTERM)
        code = node.proc.wait(timeout=5)
        took = time.monotonic() - t0
        assert code == 0, f"exit code {code}:\n{node.log()[-2000:]}"
        assert took < 2.0, f"clean shutdown on SIGTERM within 2 s, took {took:.2f} s"
        logs.append(node.log())
    assert "exporting ONNX sampler" in logs[0]
    assert "exporting ONNX sampler" not in logs[1] and "reusing ONNX sampler" in logs[1]
    assert str(tmp_path / "cache" / "samplers" / "sampler_s5_") in logs[1]


def test_camera_info_missing_or_of_another_size(ros, ros_env, tmp_path):
    node = NodeHarness(ros_env, tmp_path / "node.log", name="pose_node_no_info")
    try:
        img = load_image("basketball1.png")
        node.send(image_msg(img, sec=10))               # no CameraInfo yet: waits, then a FOV guess
        time.sleep(0.8)
        node.send(image_msg(img, sec=11))
        check_people(node.pose_for(11), img)
        assert "no CameraInfo" in node.log()
        node.send_info(1280, 960)                       # calibrated at twice the resolution
        time.sleep(0.3)
        node.send(image_msg(img, sec=12))
        check_people(node.pose_for(12), img)
        counters = node.counters()
        assert int(counters["camera_info_size_mismatch"]) >= 1 and "scaling K" in node.log()
    finally:
        assert node.close() == 0
