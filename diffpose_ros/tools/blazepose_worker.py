"""MediaPipe BlazePose timing worker for diffpose-bench-peers (runs in the MediaPipe venv).

mediapipe 0.10.21 needs numpy<2 and protobuf<5, so it lives in a venv of its own and this file
imports nothing of diffpose_ros: only the standard library, numpy and mediapipe.

    python blazepose_worker.py FRAMES.npy

FRAMES.npy holds S x F x H x W x 3 uint8 RGB frames (S scenes of F frames). Then one JSON
request per stdin line, one JSON answer per stdout line:
    {"scene": 0, "mode": "static" | "video", "frames": 150, "warmup": 10}
      -> {"ms": [...], "found": [...]}   per frame: Pose.process time and 1 if a person was found
    {"quit": true}
A "video" round starts a fresh tracker (static_image_mode=False): its first frame detects, the
rest follow the person from the previous landmarks, as a camera stream would.
"""
import json
import sys
import time

import numpy as np


def main() -> int:
    import mediapipe as mp

    frames = np.load(sys.argv[1])
    if frames.ndim != 5 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"{sys.argv[1]}: expected S x F x H x W x 3 uint8, got {frames.shape} {frames.dtype}")
    print(json.dumps({"ready": True, "mediapipe": mp.__version__, "numpy": np.__version__}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        if req.get("quit"):
            break
        scene = frames[int(req["scene"])]
        static = req["mode"] == "static"
        ms, found = [], []
        with mp.solutions.pose.Pose(static_image_mode=static, model_complexity=1, smooth_landmarks=True,
                                    enable_segmentation=False) as pose:
            for i in range(int(req.get("warmup", 0)) + int(req["frames"])):
                rgb = scene[i % len(scene)]
                t0 = time.perf_counter()
                result = pose.process(rgb)
                dt = (time.perf_counter() - t0) * 1e3
                if i >= int(req.get("warmup", 0)):
                    ms.append(dt)
                    found.append(int(result.pose_world_landmarks is not None))
        print(json.dumps({"ms": ms, "found": found}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
