"""diffpose-build-dataset: load (and cache) the motion bank, print its split table and body proportions.

  diffpose-build-dataset                                  # the shared data, protocol leave-out-v1
  diffpose-build-dataset --protocol all --bones           # + bone lengths per source at 1.75 m
  diffpose-build-dataset --data shared bvh:/my/bvh:map=daz:weight=2 --rebuild --json out.json

Prints markdown tables (clips, frames, seconds per split and source; with --bones the bone
lengths of every source scaled to a 1.75 m standing height beside the H36M-like reference) and
the time the bank took (the data preparation; a second run reads the cache).
"""
import argparse
import json
import resource
import sys
import time


def peak_rss_mb():
    """Peak resident memory of this process and of its (finished) worker processes, MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return round(own, 1), round(children, 1)


def markdown(rows, columns, headers=None):
    headers = headers or columns
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for r in rows:
        out.append("| " + " | ".join("" if r.get(c) is None else str(r.get(c)) for c in columns) + " |")
    return "\n".join(out)


def bench(bank, clips, calls: int = 30, n: int = 256):
    import numpy as np

    from diffpose_ros.data.generator import PairGenerator
    rows = []
    for window in (1, 27):
        gen = PairGenerator(bank, clips, window=window)
        rng = np.random.default_rng(0)
        for _ in range(3):
            gen.sample(rng, n)
        wall, cpu = [], []
        for _ in range(calls):
            t0, c0 = time.perf_counter(), time.process_time()
            gen.sample(rng, n)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        rows.append({"window": window, "cpu_median_ms": round(1000 * float(np.median(cpu)), 1),
                     "cpu_min_ms": round(1000 * min(cpu), 1), "wall_median_ms": round(1000 * float(np.median(wall)), 1),
                     "wall_min_ms": round(1000 * min(wall), 1)})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(prog="diffpose-build-dataset", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", nargs="+", default=None, metavar="SPEC",
                    help="source specs (default: shared); see diffpose_ros/data/sources.py")
    ap.add_argument("--fps", type=float, default=10.0)
    ap.add_argument("--protocol", default="leave-out-v1", choices=["leave-out-v1", "all"])
    ap.add_argument("--bones", action="store_true", help="print the bone-length table per source")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rebuild", action="store_true", help="ignore (and replace) the cached bank")
    ap.add_argument("--bench", action="store_true",
                    help="time PairGenerator.sample(rng, 256) on the train split, frames and 27-frame windows")
    ap.add_argument("--json", default=None, help="also write the tables as JSON to this file")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    from diffpose_ros.data.body import TABLE_BONES, bone_table
    from diffpose_ros.data.motion import MotionBank
    from diffpose_ros.data.protocol import protocol_splits, split_table
    from diffpose_ros.data.sources import SourceSpecError

    t0 = time.perf_counter()
    try:
        if args.rebuild:
            bank = MotionBank.load(args.data, fps=args.fps, progress=not args.no_progress, cache=False,
                                   workers=args.workers)
            from diffpose_ros.data.motion import _cache_file, src
            bank._save(_cache_file(src.resolve(args.data), args.fps))
        else:
            bank = MotionBank.load(args.data, fps=args.fps, progress=not args.no_progress, workers=args.workers)
    except (SourceSpecError, ValueError) as e:
        print(f"diffpose-build-dataset: {e}", file=sys.stderr)
        return 2
    seconds = round(time.perf_counter() - t0, 2)
    splits = protocol_splits(bank, args.protocol)
    rows = split_table(bank, splits)
    own, children = peak_rss_mb()
    summary = {"data": args.data or ["shared"], "fps": args.fps, "protocol": args.protocol,
               "clips": len(bank), "frames": bank.num_frames, "seconds": seconds,
               "cached": bool(bank.info.get("cached")), "cache": bank.info.get("cache"),
               "peak_rss_mb": own, "peak_rss_workers_mb": children, "splits": rows}
    print(f"motion bank: {len(bank)} clips, {bank.num_frames} frames at {args.fps:g} fps, "
          f"{'read from the cache' if summary['cached'] else 'built'} in {seconds} s "
          f"(peak RSS {own} MiB, workers {children} MiB)\n")
    print(f"protocol {args.protocol}:\n")
    print(markdown(rows, ["split", "source", "clips", "frames", "seconds"]))
    if args.bones:
        bones = bone_table(bank)
        summary["bones_at_1.75m"] = bones
        print("\nbone lengths (m) at 1.75 m standing height (spine = pelvis->thorax, neck = thorax->neck_nose, "
              "head = neck_nose->head):\n")
        print(markdown(bones, ["source", "clips", "own_height_m"] + list(TABLE_BONES)))
    if args.bench:
        summary["bench"] = bench(bank, splits["train"])
        print("\nPairGenerator.sample(rng, 256), 30 calls after 3 warm-up calls (process CPU time is "
              "less disturbed by other jobs than wall time):\n")
        print(markdown(summary["bench"], ["window", "cpu_median_ms", "cpu_min_ms", "wall_median_ms", "wall_min_ms"]))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(summary, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
