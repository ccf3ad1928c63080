"""diffpose-detect: images or a video -> npz of 2D keypoints for the offline lifter.

One row per (frame, person): ``keypoints`` (N,17,2) px (H36M order, or COCO-17 with
``--format coco17``), ``scores`` (N,17) confidences, ``sigma_px`` (N,17) 2D uncertainty
(H36M only), ``boxes`` (N,4), ``box_scores`` (N,), ``track_ids`` (N,), ``frame`` (N,)
index of the image/frame, ``stamp`` (N,) s, ``K`` (3,3), ``image_size`` (w, h),
``format`` ('h36m' | 'coco17').
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from diffpose_ros.camera import fov_intrinsics
from diffpose_ros.detector.coco_to_h36m import coco_to_h36m
from diffpose_ros.detector.draw import draw_detections
from diffpose_ros.detector.tracker import Tracker
from diffpose_ros.detector.uncertainty import box_diagonal, keypoint_sigma_px
from diffpose_ros.detector.yolo_pose import YoloPoseDetector

VIDEO_EXT = {".avi", ".mp4", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}
DEFAULT_FOV_DEG = 60.0


def intrinsics_from_fov(width: int, height: int, hfov_deg: float) -> np.ndarray:
    """Pinhole K for --fov: the package's one field-of-view guess (camera.fov_intrinsics)."""
    if not 1.0 < hfov_deg < 179.0:
        raise ValueError(f"--fov must be in (1, 179) degrees, got {hfov_deg}")
    return fov_intrinsics(width, height, hfov_deg)


def parse_k(text: str) -> np.ndarray:
    vals = [float(v) for v in text.replace(",", " ").split()]
    if len(vals) == 4:
        fx, fy, cx, cy = vals
        return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
    if len(vals) == 9:
        return np.array(vals).reshape(3, 3)
    raise ValueError(f"--K needs 4 values (fx,fy,cx,cy) or 9 (row-major 3x3), got {len(vals)}")


def frames(paths, video_fps=None):
    """Yield (frame_index, stamp_s, image) over image files or one video."""
    if len(paths) == 1 and Path(paths[0]).suffix.lower() in VIDEO_EXT:
        cap = cv2.VideoCapture(str(paths[0]))
        if not cap.isOpened():
            raise ValueError(f"cannot open video {paths[0]}")
        fps = video_fps or cap.get(cv2.CAP_PROP_FPS) or 30.0
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        i = 0
        with tqdm(total=total, desc="frames", unit="f") as bar:
            while True:
                ok, img = cap.read()
                if not ok:
                    break
                yield i, i / fps, img
                i += 1
                bar.update()
        cap.release()
        return
    for p in paths:
        if Path(p).suffix.lower() in VIDEO_EXT:
            raise ValueError(f"{p}: give a video alone, not mixed with other inputs")
    fps = video_fps or 30.0
    for i, p in enumerate(tqdm(paths, desc="images", unit="img")):
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise ValueError(f"cannot read image {p}")
        if img.dtype != np.uint8:  # 16-bit PNG etc.
            img = cv2.convertScaleAbs(img, alpha=255.0 / max(1, img.max()))
        if img.ndim == 3 and img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
        yield i, i / fps, img


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", help="image files (a sequence) or one video file")
    parser.add_argument("-o", "--out", type=Path, required=True, help="output .npz")
    parser.add_argument("--format", choices=("h36m", "coco17"), default="h36m")
    cam = parser.add_mutually_exclusive_group()
    cam.add_argument("--fov", type=float, help="horizontal field of view in degrees")
    cam.add_argument("--K", help="intrinsics: 'fx,fy,cx,cy' or 9 row-major values")
    parser.add_argument("--model", type=Path, help="YOLOv8/11-pose ONNX (default: exported yolo11n-pose)")
    parser.add_argument("--score-threshold", type=float, default=0.25)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fps", type=float, help="frame rate for stamps (default: the video's, or 30)")
    parser.add_argument("--overlay-dir", type=Path, help="write one overlay PNG per frame here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    detector = YoloPoseDetector(args.model, score_threshold=args.score_threshold, threads=args.threads)
    tracker = Tracker()
    if args.overlay_dir:
        args.overlay_dir.mkdir(parents=True, exist_ok=True)
    rows = {k: [] for k in ("keypoints", "scores", "sigma_px", "boxes", "box_scores", "track_ids", "frame", "stamp")}
    size = None
    n_frames = 0
    for idx, stamp, img in frames(args.inputs, args.fps):
        n_frames += 1
        hw = (img.shape[1], img.shape[0])
        if size is None:
            size = hw
        elif hw != size and args.K is None:
            raise ValueError(f"frame {idx} is {hw[0]}x{hw[1]}, the first was {size[0]}x{size[1]}: "
                             "one K cannot fit both; process them separately or give --K")
        dets = detector.detect(img)
        tracks = tracker.update(dets, stamp)
        for t in tracks:
            d = t.detection
            if args.format == "h36m":
                kp, conf = coco_to_h36m(d.keypoints, d.keypoint_conf)
                sigma = keypoint_sigma_px(conf, box_diagonal(d.box))
            else:
                kp, conf, sigma = d.keypoints, d.keypoint_conf, np.full(17, np.nan)
            rows["keypoints"].append(kp)
            rows["scores"].append(conf)
            rows["sigma_px"].append(sigma)
            rows["boxes"].append(d.box)
            rows["box_scores"].append(d.score)
            rows["track_ids"].append(t.track_id)
            rows["frame"].append(idx)
            rows["stamp"].append(stamp)
        if args.overlay_dir:
            over = draw_detections(img, [t.detection for t in tracks], [t.track_id for t in tracks])
            cv2.imwrite(str(args.overlay_dir / f"frame_{idx:06d}.png"), over)
    if size is None:
        raise ValueError("no frames read")

    if args.K is not None:
        K = parse_k(args.K)
    else:
        fov = args.fov if args.fov is not None else DEFAULT_FOV_DEG
        if args.fov is None:
            print(f"WARNING: no --fov/--K given; guessing a {DEFAULT_FOV_DEG:.0f} deg horizontal FOV "
                  "(metric 3D depends on it)", file=sys.stderr)
        K = intrinsics_from_fov(size[0], size[1], fov)

    shapes = {"keypoints": (0, 17, 2), "scores": (0, 17), "sigma_px": (0, 17), "boxes": (0, 4)}
    data = {k: (np.asarray(v, dtype=np.float64) if v else np.zeros(shapes.get(k, (0,))))
            for k, v in rows.items()}
    data["track_ids"] = data["track_ids"].astype(np.int64)
    data["frame"] = data["frame"].astype(np.int64)
    data["K"] = K
    data["image_size"] = np.array(size, dtype=np.int64)
    data["format"] = np.array(args.format)

    out = args.out if args.out.suffix == ".npz" else args.out.with_suffix(args.out.suffix + ".npz")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **data)
    os.replace(tmp, out)
    summary = {"out": str(out), "frames": n_frames, "rows": int(len(data["frame"])),
               "tracks": int(len(np.unique(data["track_ids"]))), "format": args.format,
               "provider": detector.provider, "K": K.round(3).tolist()}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
