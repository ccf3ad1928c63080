"""diffpose-bench-detector: detector latency on this machine (640x480 frame)."""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from diffpose_ros.detector.yolo_pose import YoloPoseDetector
from diffpose_ros.paths import IMAGES_DIR


def _stats(ms):
    ms = np.asarray(ms)
    return {"median_ms": round(float(np.median(ms)), 2), "p90_ms": round(float(np.percentile(ms, 90)), 2),
            "mean_ms": round(float(ms.mean()), 2), "min_ms": round(float(ms.min()), 2)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, help="ONNX model (default: exported yolo11n-pose)")
    parser.add_argument("--image", type=Path, default=IMAGES_DIR / "basketball1.png",
                        help="test frame (resized to 640x480)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--providers", default="cpu", choices=("cpu", "auto"))
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    if args.runs < 1:
        raise ValueError("--runs must be >= 1")

    img = cv2.imread(str(args.image), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(args.image)
    img = cv2.resize(img, (640, 480))
    providers = "auto" if args.providers == "auto" else ("CPUExecutionProvider",)
    det = YoloPoseDetector(args.model, providers=providers, threads=args.threads)
    blob, _ = det.preprocess(img)
    for _ in range(args.warmup):
        det.detect(img)

    total, infer = [], []
    for _ in tqdm(range(args.runs), desc="detect", unit="run"):
        t0 = time.perf_counter()
        n = len(det.detect(img))
        total.append((time.perf_counter() - t0) * 1e3)
    for _ in range(args.runs):
        t0 = time.perf_counter()
        det.session.run(None, {det.input_name: blob})
        infer.append((time.perf_counter() - t0) * 1e3)

    result = {"model": det.model_path.name, "provider": det.provider, "threads": args.threads,
              "image": f"{args.image.name} resized to 640x480", "input": det.input_size,
              "runs": args.runs, "warmup": args.warmup, "detections": n,
              "detect_end_to_end": _stats(total), "onnx_inference_only": _stats(infer),
              "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
              "load_avg_1min": round(os.getloadavg()[0], 2)}
    print(f"threads={args.threads} provider={det.provider}")
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
