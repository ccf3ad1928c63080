"""Time the node's RViz markers per frame: MarkerCache.build (the markers of every person, their
ellipsoids included) and rclpy's serialize_message of the array (what publish does before DDS),
for 1 and 3 tracked people with a filter state (21 markers each), median over --iters frames,
in --rounds rounds. Whatever `diffpose_ros` is first on the path is timed, so an older checkout
on PYTHONPATH gives the A/B:

    .venv/bin/python scripts/bench_markers.py [--people 1 3] [--iters 500] [--rounds 3]
    PYTHONPATH=/path/to/old/checkout .venv/bin/python scripts/bench_markers.py
"""
import argparse
import time

import numpy as np
from rclpy.serialization import serialize_message
from std_msgs.msg import Header

import diffpose_ros
from diffpose_ros.people import FilteredState, Person3D
from diffpose_ros.ros.markers import MarkerCache


def person(rng, track_id: int) -> Person3D:
    """A tracked person with random (valid) numbers: the cost does not depend on them."""
    a = rng.normal(size=(17, 3, 3)) * 0.05
    cov = a @ np.swapaxes(a, -1, -2) + 1e-4 * np.eye(3)
    pos = rng.normal(size=(17, 3)) * 0.3 + [track_id - 1.0, 0.0, 4.0]
    b = rng.normal(size=(3, 3)) * 0.2
    state = FilteredState(root=pos[0], velocity=rng.normal(size=3), covariance=np.eye(6) * 0.02, positions=pos,
                          joint_covariance=cov, time_since_measurement=0.0, is_prediction=False, ahead_s=1.0,
                          ahead_root=pos[0] + 0.5, ahead_covariance=b @ b.T + 1e-3 * np.eye(3))
    return Person3D(track_id=track_id, score=0.9, positions=pos, covariance=cov, root=pos[0],
                    root_covariance=cov[0], keypoints_2d=rng.uniform(0, 640, (17, 2)),
                    keypoint_conf=rng.uniform(0, 1, 17).astype(np.float32), num_hypotheses=5,
                    diffusion_steps=5, filtered=state)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--people", type=int, nargs="+", default=[1, 3])
    p.add_argument("--iters", type=int, default=500)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    print(f"diffpose_ros from {diffpose_ros.__file__}")
    rng = np.random.default_rng(0)
    header = Header(frame_id="camera_optical_frame")
    for n in args.people:
        people = [person(rng, i + 1) for i in range(n)]
        cache = MarkerCache()
        build, ser = [], []
        for _ in range(args.rounds):
            for k in range(args.iters):
                for q in people:           # new numbers every frame, as from the lifter
                    q.positions = q.positions + 0.01
                    q.keypoint_conf = np.roll(q.keypoint_conf, 1)
                    q.filtered.is_prediction = bool(k % 2)
                t0 = time.perf_counter()
                arr = cache.build(people, [], header)
                t1 = time.perf_counter()
                data = serialize_message(arr)
                t2 = time.perf_counter()
                build.append(t1 - t0)
                ser.append(t2 - t1)
        print(f"{n} people: {len(arr.markers)} markers, {len(data)} bytes; median build "
              f"{np.median(build) * 1e3:.3f} ms, serialize {np.median(ser) * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
