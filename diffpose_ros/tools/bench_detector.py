"""diffpose-bench-detector: the detector's latency and accuracy per setting, side by side.

Every setting (input size, letterbox mode, fp32 or int8 model, threads,
ONNX Runtime graph optimisation, intra-op spinning) gets its own session in this one process,
and the latency rounds alternate between them on the same frames, so a load that comes and goes
on a shared machine hits every setting alike: compare the ratios, not the milliseconds.

Latency: the shared photos basketball1, basketball2, messi5 resized to 640x480 and looped, per
frame: letterbox + colour conversion (pre), ONNX Runtime (infer), decoding + NMS (post).

Accuracy, against the reference (the 640x640 fp32 model, the detector before this tool's
settings existed), on the shared photos (native size) and on vtest.avi frames 0:400:4 (the int8
model is calibrated on frames 400:795, never on these):
  found     reference people (score >= --score) that the setting finds too (IoU >= 0.5, score >= --score)
  extra     people the setting reports (score >= --score) that the reference does not
  keypoint  pixel distance to the reference's keypoint, per joint, over the joints the reference
            sees with confidence >= 0.5 of every matched person: median and p90
  tracking  the tracker on vtest.avi frames 0..99 (10 fps): same-person frame pairs (box IoU > 0.5
            with a box of the previous frame) and how many of them changed id

--follow adds follow mode (detector/follow.py: the whole image every k-th frame, in between only
around the people tracked) on vtest.avi frames 0..399 in order at the camera's 768x576 (people
about 100 px tall, as a robot sees them at several metres): per k, the detector's cost per frame
(whole, region and redone frames together), the share of each kind of frame, and against the
whole image every frame (k = 0) on the same frames: people found, keypoint distance of the
matched people, and the tracker's id switches. The settings run in lock step (every frame
through each, the order rotated), so load hits them alike.

--explain adds latency rows that explain a slow detector (1 vs 2 threads, spinning, the graph
optimisation levels; threads and spinning do not change the numbers, so no accuracy check), the
first call after start, and the frame content (no person, 1, 2, 3 people).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment
from tqdm import tqdm

from diffpose_ros.detector.export import CALIBRATION_FRAMES, DEFAULT_ONNX, INT8_ONNX, quantize_int8
from diffpose_ros.detector.tracker import Tracker
from diffpose_ros.detector.yolo_pose import YoloPoseDetector, box_iou
from diffpose_ros.paths import IMAGES_DIR, REPO_DIR
from diffpose_ros.skeleton import COCO_JOINTS

PHOTOS = ("basketball1.png", "basketball2.png", "messi5.jpg", "grace_hopper.jpg", "astronaut.png")
BENCH_PHOTOS = ("basketball1.png", "basketball2.png", "messi5.jpg")   # the looped frames
EVAL_VIDEO_FRAMES = range(0, 400, 4)
TRACK_FRAMES = 100
REFERENCE = "640-square: size=640,letterbox=square"
DEFAULT_SETTINGS = (
    REFERENCE,
    "640-tight: size=640,letterbox=tight",
    "640: size=640",
    "576: size=576",
    "512: size=512",
    "480: size=480",
    "416: size=416",
    "320: size=320",
    "int8-640: size=640,model=int8",
    "int8-480: size=480,model=int8",
)
EXPLAIN_SETTINGS = (
    "640-square-1thread: size=640,letterbox=square,threads=1",
    "640-square-spin: size=640,letterbox=square,spin=1",
    "640-square-opt-disable: size=640,letterbox=square,opt=disable",
    "640-square-opt-basic: size=640,letterbox=square,opt=basic",
    "640-square-opt-extended: size=640,letterbox=square,opt=extended",
    "640-1thread: size=640,threads=1",
)
KEYS = {"size": int, "letterbox": str, "model": str, "threads": int, "opt": str, "spin": lambda v: bool(int(v))}


@dataclass
class Setting:
    name: str
    size: int = 640
    letterbox: str = "aligned"
    model: str = "fp32"
    threads: int = 2
    opt: str = "all"
    spin: bool = False

    @classmethod
    def parse(cls, spec: str) -> "Setting":
        """'name: key=value,...' with keys size, letterbox (aligned | square | tight), model (fp32 | int8 | path), threads, opt, spin."""
        name, _, body = spec.partition(":")
        if not body:
            name, body = spec, spec
        values = {}
        for item in filter(None, (x.strip() for x in body.split(","))):
            key, eq, value = item.partition("=")
            if not eq or key not in KEYS:
                raise ValueError(f"setting {spec!r}: {item!r} is not one of {', '.join(k + '=...' for k in KEYS)}")
            values[key] = KEYS[key](value)
        return cls(name=name.strip(), **values)

    def model_path(self) -> Path:
        return {"fp32": DEFAULT_ONNX, "int8": INT8_ONNX}.get(self.model, Path(self.model))

    def detector(self, score_threshold: float) -> YoloPoseDetector:
        return YoloPoseDetector(self.model_path(), score_threshold=score_threshold, threads=self.threads,
                                input_size=self.size, letterbox_mode=self.letterbox, optimization=self.opt,
                                spinning=self.spin)


def _read(name: str) -> np.ndarray:
    img = cv2.imread(str(IMAGES_DIR / name), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(IMAGES_DIR / name)
    return img


def video_frames(indices) -> list[np.ndarray]:
    wanted, frames = sorted(set(indices)), {}
    cap = cv2.VideoCapture(str(IMAGES_DIR / "vtest.avi"))
    index = 0
    while index <= wanted[-1]:
        ok, frame = cap.read()
        if not ok:
            raise FileNotFoundError(f"{IMAGES_DIR / 'vtest.avi'}: frame {index} unreadable")
        if index in wanted:
            frames[index] = frame
        index += 1
    cap.release()
    return [frames[i] for i in indices]


def scene(people: int) -> np.ndarray:
    """640x480 frames with 0, 1, 2 or 3 people, built from the shared photos."""
    canvas = np.full((480, 640, 3), 114, np.uint8)
    messi = _read("messi5.jpg")
    if people == 1:
        h = int(640 * messi.shape[0] / messi.shape[1])
        canvas[(480 - h) // 2:(480 - h) // 2 + h] = cv2.resize(messi, (640, h))
    elif people == 2:
        canvas = cv2.resize(_read("basketball1.png"), (640, 480))
    elif people == 3:
        canvas[120:360, :320] = cv2.resize(_read("basketball1.png"), (320, 240))
        canvas[120:360, 320:] = cv2.resize(messi, (320, 240))
    return canvas


def stats(ms) -> dict:
    ms = np.asarray(ms, dtype=np.float64)
    if not ms.size:
        return {"n": 0}
    return {"median_ms": round(float(np.median(ms)), 2), "p90_ms": round(float(np.percentile(ms, 90)), 2),
            "n": int(ms.size)}


def timed_detect(det: YoloPoseDetector, image: np.ndarray) -> tuple[list, dict]:
    """detect(), with its three parts timed (ms)."""
    t0 = time.perf_counter()
    blob, lb = det.preprocess(image)
    t1 = time.perf_counter()
    raw = det.session.run(None, {det.input_name: blob})[0]
    t2 = time.perf_counter()
    dets = det.postprocess(raw[0], lb, image.shape[:2])
    t3 = time.perf_counter()
    return dets, {"pre": (t1 - t0) * 1e3, "infer": (t2 - t1) * 1e3, "post": (t3 - t2) * 1e3,
                  "total": (t3 - t0) * 1e3}


def latency(detectors: dict, frames: list, rounds: int, frames_per_round: int) -> dict:
    """Alternating rounds: each round runs every setting on the same frames, the order rotated."""
    names = list(detectors)
    times = {n: {k: [] for k in ("pre", "infer", "post", "total")} for n in names}
    found = {n: [] for n in names}
    for r in tqdm(range(rounds), desc="latency rounds", unit="round"):
        for name in names[r % len(names):] + names[:r % len(names)]:
            for i in range(frames_per_round):
                dets, t = timed_detect(detectors[name], frames[i % len(frames)])
                for k, v in t.items():
                    times[name][k].append(v)
                found[name].append(len(dets))
    return {n: {**{k: stats(v) for k, v in times[n].items()}, "people_mean": round(float(np.mean(found[n])), 2)}
            for n in names}


def match(ref: list, cand: list, iou_min: float = 0.5) -> list[tuple[int, int]]:
    if not ref or not cand:
        return []
    iou = box_iou(np.stack([d.box for d in ref]), np.stack([d.box for d in cand]))
    rows, cols = linear_sum_assignment(-iou)
    return [(r, c) for r, c in zip(rows, cols) if iou[r, c] >= iou_min]


def compare(ref_dets: list[list], cand_dets: list[list], score: float, conf_min: float = 0.5) -> dict:
    """Per-frame detection lists of the reference and a setting -> found, extra, keypoint errors."""
    n_ref = n_found = n_extra = 0
    errors = [[] for _ in COCO_JOINTS]
    for ref, cand in zip(ref_dets, cand_dets):
        ref = [d for d in ref if d.score >= score]
        pairs = match(ref, cand)
        n_ref += len(ref)
        n_found += sum(cand[c].score >= score for _, c in pairs)
        matched = {c for _, c in pairs}
        n_extra += sum(d.score >= score for j, d in enumerate(cand) if j not in matched)
        for r, c in pairs:
            seen = ref[r].keypoint_conf >= conf_min
            dist = np.linalg.norm(ref[r].keypoints - cand[c].keypoints, axis=1)
            for j in np.flatnonzero(seen):
                errors[j].append(dist[j])
    flat = np.concatenate([np.asarray(e) for e in errors]) if any(errors) else np.zeros(0)
    per_joint = {name: {"median_px": round(float(np.median(e)), 2), "p90_px": round(float(np.percentile(e, 90)), 2),
                        "n": len(e)} for name, e in zip(COCO_JOINTS, errors) if e}
    return {"reference_people": n_ref, "found": n_found, "extra": n_extra,
            "keypoint_median_px": round(float(np.median(flat)), 2) if flat.size else None,
            "keypoint_p90_px": round(float(np.percentile(flat, 90)), 2) if flat.size else None,
            "keypoint_per_joint": per_joint}


def same_person_pairs(prev: dict, cur: dict) -> tuple[int, int]:
    """Boxes {track id: box} of two consecutive frames -> (same-person pairs: box IoU > 0.5,
    how many of them changed id)."""
    pairs = switches = 0
    for tid, box in cur.items():
        for pid, pbox in prev.items():
            if box_iou(box[None], pbox[None])[0, 0] > 0.5:
                pairs += 1
                switches += tid != pid
    return pairs, switches


def id_switches(det: YoloPoseDetector, frames: list, fps: float = 10.0) -> dict:
    """The tracker on consecutive frames: same-person pairs across frames and id changes among them."""
    tracker, prev, pairs, switches = Tracker(), {}, 0, 0
    for f, img in enumerate(frames):
        cur = {t.track_id: t.detection.box for t in tracker.update(det.detect(img), f / fps)}
        n, s = same_person_pairs(prev, cur)
        pairs, switches, prev = pairs + n, switches + s, cur
    return {"frames": len(frames), "pairs": pairs, "id_switches": switches}


FOLLOW_FRAMES = range(400)
FOLLOW_EVERY = (0, 3, 5, 10)


def follow(every_values, score: float, fps: float = 25.0, margin: float = 0.3) -> dict:
    """Follow mode against the whole image every frame (every = 0) on vtest.avi in order."""
    from diffpose_ros.detector.follow import FollowConfig
    from diffpose_ros.pipeline import PipelineConfig, PosePipeline
    frames = video_frames(FOLLOW_FRAMES)
    det = YoloPoseDetector(score_threshold=score, threads=2)     # stateless: one session serves all
    pipes = {k: PosePipeline(det, Tracker(), None, PipelineConfig(score_threshold=score,
                                                                   follow=FollowConfig(every=k, margin=margin)))
             for k in every_values}
    ms = {k: [] for k in pipes}
    region_ms = {k: [] for k in pipes}
    dets = {k: [] for k in pipes}
    prev = {k: {} for k in pipes}
    pairs = {k: 0 for k in pipes}
    switches = {k: 0 for k in pipes}
    order = list(pipes)
    for f, img in enumerate(tqdm(frames, desc="follow", unit="frame")):
        for k in order[f % len(order):] + order[:f % len(order)]:
            regions_before = pipes[k].follower.counts["region"] - pipes[k].follower.counts["redone"]
            t0 = time.perf_counter()
            tracks, _ = pipes[k].detect_and_track(img, f / fps)
            ms[k].append((time.perf_counter() - t0) * 1e3)
            if pipes[k].follower.counts["region"] - pipes[k].follower.counts["redone"] > regions_before:
                region_ms[k].append(ms[k][-1])          # a frame served by regions alone
            dets[k].append([t.detection for t in tracks])
            cur = {t.track_id: t.detection.box for t in tracks}
            n, s = same_person_pairs(prev[k], cur)
            pairs[k], switches[k], prev[k] = pairs[k] + n, switches[k] + s, cur
    runs = {}
    for k in pipes:
        runs[str(k)] = {"every": k, "margin": margin, "detect_and_track": stats(ms[k]),
                        "mean_ms": round(float(np.mean(ms[k])), 2), "region_frames": stats(region_ms[k]),
                        "frames": dict(pipes[k].follower.counts),
                        "people_per_frame": round(float(np.mean([len(d) for d in dets[k]])), 2),
                        "tracking": {"pairs": pairs[k], "id_switches": switches[k]}}
        if k != 0 and 0 in pipes:
            runs[str(k)]["against_whole_image"] = compare(dets[0], dets[k], score)
    return {"video": "vtest.avi", "frames": len(frames), "score_threshold": score, "runs": runs}


def accuracy(settings: list[Setting], reference: Setting, score: float) -> dict:
    photos = [_read(n) for n in PHOTOS]
    video = video_frames(EVAL_VIDEO_FRAMES)
    track = video_frames(range(TRACK_FRAMES))
    overlap = set(EVAL_VIDEO_FRAMES) & set(CALIBRATION_FRAMES)
    assert not overlap, f"evaluation frames {sorted(overlap)} are int8 calibration frames"
    ref = reference.detector(score)
    ref_photos = [ref.detect(img) for img in photos]
    ref_video = [ref.detect(img) for img in video]
    out = {}
    for s in tqdm(settings, desc="accuracy", unit="setting"):
        loose = s.detector(0.1)     # low threshold: a person found with a lower score still counts for keypoints
        out[s.name] = {"photos": compare(ref_photos, [loose.detect(img) for img in photos], score),
                       "video": compare(ref_video, [loose.detect(img) for img in video], score),
                       "tracking": id_switches(s.detector(score), track)}
    return out


def explain(reference: Setting, rounds: int, score: float) -> dict:
    """First call after start, and the default setting on frames with 0-3 people."""
    first = {}
    frame = scene(2)
    for s in (reference, Setting.parse("640: size=640")):
        t0 = time.perf_counter()
        det = s.detector(score)
        t1 = time.perf_counter()
        _, t = timed_detect(det, frame)
        _, t2 = timed_detect(det, frame)
        first[s.name] = {"session_create_ms": round((t1 - t0) * 1e3, 1), "first_call_ms": round(t["total"], 1),
                         "second_call_ms": round(t2["total"], 1)}
    det = reference.detector(score)
    content = {}
    scenes = {p: scene(p) for p in range(4)}
    times = {p: [] for p in scenes}
    counts = {p: len(det.detect(img)) for p, img in scenes.items()}
    for r in range(rounds):
        for p, img in scenes.items():
            for _ in range(10):
                times[p].append(timed_detect(det, img)[1]["total"])
    for p in scenes:
        content[f"{p} people in the scene"] = {**stats(times[p]), "detections": counts[p]}
    return {"first_call": first, f"frame_content ({reference.name})": content}


def print_follow(fol: dict) -> None:
    print(f"\nfollow mode on {fol['video']} ({fol['frames']} frames in order, score >= {fol['score_threshold']}): "
          "detector + tracker per frame; against the whole image every frame")
    print(f"{'every k':>7s} {'median / p90 / mean ms':>24s} {'region frames ms':>16s} {'frames whole/region/redone':>27s} {'people':>6s} "
          f"{'found/ref (+extra)':>18s} {'keypoints med / p90 px':>22s} {'id switches / pairs':>19s}")
    for v in fol["runs"].values():
        t, c, a = v["detect_and_track"], v["frames"], v.get("against_whole_image")
        vs = (f"{a['found']}/{a['reference_people']} (+{a['extra']})",
              f"{a['keypoint_median_px']} / {a['keypoint_p90_px']}") if a else ("-", "-")
        rm = v["region_frames"].get("median_ms")
        print(f"{v['every']:7d} {t['median_ms']:8.1f} / {t['p90_ms']:5.1f} / {v['mean_ms']:5.1f} "
              f"{('-' if rm is None else f'{rm:.1f}'):>16s} "
              f"{c['whole']:>11d}/{c['region']}/{c['redone']:<8d} {v['people_per_frame']:6.2f} {vs[0]:>18s} "
              f"{vs[1]:>22s} {v['tracking']['id_switches']:>9d} / {v['tracking']['pairs']}")


def print_tables(result: dict) -> None:
    lat, acc = result["latency"], result.get("accuracy", {})
    print(f"\nlatency per frame, 640x480, median / p90 ms (load average {result['load_avg_1min_start']} -> "
          f"{result['load_avg_1min_end']}, {result['rounds']} alternating rounds)")
    print(f"{'setting':22s} {'input':>9s} {'total':>15s} {'pre':>6s} {'infer':>15s} {'post':>6s}")
    for name, v in lat.items():
        print(f"{name:22s} {v['input']:>9s} {v['total']['median_ms']:7.1f} / {v['total']['p90_ms']:5.1f} "
              f"{v['pre']['median_ms']:6.1f} {v['infer']['median_ms']:7.1f} / {v['infer']['p90_ms']:5.1f} "
              f"{v['post']['median_ms']:6.1f}")
    if acc:
        print(f"\naccuracy against {result['reference']} (score >= {result['score_threshold']}); keypoints px "
              "median / p90; found/ref (+extra); tracking: id switches / pairs")
        print(f"{'setting':22s} {'photos kp':>13s} {'photos found':>13s} {'video kp':>13s} {'video found':>14s} "
              f"{'tracking':>9s}")
        for name, v in acc.items():
            p, vv, t = v["photos"], v["video"], v["tracking"]
            print(f"{name:22s} {p['keypoint_median_px']:5.2f} / {p['keypoint_p90_px']:5.2f} "
                  f"{p['found']:>5d}/{p['reference_people']:<3d}(+{p['extra']}) "
                  f"{vv['keypoint_median_px']:5.2f} / {vv['keypoint_p90_px']:5.2f} "
                  f"{vv['found']:>5d}/{vv['reference_people']:<3d}(+{vv['extra']}) "
                  f"{t['id_switches']:>3d} / {t['pairs']}")
    if "explain" in result:
        print("\nfirst call after start:")
        for name, v in result["explain"]["first_call"].items():
            print(f"  {name}: {v}")
        for key, rows in result["explain"].items():
            if key.startswith("frame_content"):
                print(f"{key}:")
                for name, v in rows.items():
                    print(f"  {name}: median {v['median_ms']} ms, p90 {v['p90_ms']} ms, {v['detections']} detections")


def _write(path: Path, result: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--settings", nargs="+", default=list(DEFAULT_SETTINGS),
                    help="'name: key=value,...' (keys: size, letterbox=aligned|square|tight, model=fp32|int8|PATH, threads, opt, spin)")
    ap.add_argument("--reference", default=REFERENCE, help="the setting the others are compared with")
    ap.add_argument("--rounds", type=int, default=5, help="alternating latency rounds")
    ap.add_argument("--frames", type=int, default=10, help="frames per setting and round")
    ap.add_argument("--score", type=float, default=0.4, help="person score threshold (the node's default)")
    ap.add_argument("--no-accuracy", action="store_true", help="latency only")
    ap.add_argument("--follow", type=int, nargs="*", default=None, metavar="K",
                    help=f"also follow mode on vtest.avi for these k (default {' '.join(map(str, FOLLOW_EVERY))}; "
                         "0 = the whole image every frame, the comparison)")
    ap.add_argument("--explain", action="store_true", help="also the threads/spinning/optimisation rows, "
                    "the first call and the frame content")
    ap.add_argument("--out", type=Path, default=REPO_DIR / "out" / "bench_detector" / "bench_detector.json")
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.frames < 1:
        raise ValueError("--rounds and --frames must be >= 1")
    compared = [Setting.parse(s) for s in args.settings]   # the accuracy checks run on these
    settings = compared + ([Setting.parse(s) for s in EXPLAIN_SETTINGS] if args.explain else [])
    names = [s.name for s in settings]
    if len(set(names)) != len(names):
        raise ValueError(f"setting names must be unique: {names}")
    reference = Setting.parse(args.reference)
    for s in settings + [reference]:
        if s.model == "int8":
            quantize_int8()          # once (about 20 s); a no-op when up to date
        if not s.model_path().exists():
            raise FileNotFoundError(f"setting {s.name}: {s.model_path()} not found; run diffpose-export-detector")

    frames = [cv2.resize(_read(n), (640, 480)) for n in BENCH_PHOTOS]
    load_start = round(os.getloadavg()[0], 2)
    detectors = {s.name: s.detector(args.score) for s in settings}
    lat = latency(detectors, frames, args.rounds, args.frames)
    for s in settings:
        h, w = detectors[s.name].input_shape((480, 640))
        lat[s.name]["input"] = f"{w}x{h}"
        lat[s.name]["setting"] = vars(s)
    result = {"what": "detector latency and accuracy per setting (diffpose-bench-detector)",
              "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
              "rounds": args.rounds, "frames_per_round": args.frames, "latency_frames": list(BENCH_PHOTOS),
              "reference": reference.name, "score_threshold": args.score, "load_avg_1min_start": load_start,
              "latency": lat}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    _write(args.out, result)                    # the latency part is kept if the accuracy part is stopped
    if not args.no_accuracy:
        result["accuracy"] = accuracy(compared, reference, args.score)
    if args.follow is not None:
        result["follow"] = follow(sorted(set([0] + (args.follow or list(FOLLOW_EVERY)))), args.score)
    if args.explain:
        result["explain"] = explain(reference, args.rounds, args.score)
    result["load_avg_1min_end"] = round(os.getloadavg()[0], 2)
    print_tables(result)
    if "follow" in result:
        print_follow(result["follow"])
    _write(args.out, result)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
