"""diffpose-build-dataset: build and cache the mocap 2D-3D splits, print counts, time and memory as JSON."""
import argparse
import json
import resource
import sys
import time

from diffpose_ros import paths


def peak_rss_mb():
    """Peak resident memory of this process and of its (finished) worker processes, MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return round(own, 1), round(children, 1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--splits", nargs="+", default=["train", "val", "test"], choices=["train", "val", "test"])
    ap.add_argument("--stride", type=int, default=5)
    ap.add_argument("--cameras-per-clip", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit-clips", type=int, default=None)
    ap.add_argument("--mocap-dir", default=str(paths.MOCAP_DIR))
    ap.add_argument("--skeleton-map", default=None, help="map name or JSON path (default: auto-detect)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rebuild", action="store_true", help="delete the cached file first")
    args = ap.parse_args(argv)

    from diffpose_ros.data import dataset
    from diffpose_ros.data.noise import NoiseConfig

    summary = {"mocap_dir": args.mocap_dir, "stride": args.stride, "cameras_per_clip": args.cameras_per_clip,
               "seed": args.seed, "splits": {}}
    t_all = time.perf_counter()
    for split in args.splits:
        clips = dataset.split_clips(split, args.mocap_dir)
        if args.limit_clips is not None:
            clips = clips[:args.limit_clips]
        cache_file = dataset.dataset_cache_file(split, clips, args.stride, args.cameras_per_clip, NoiseConfig(),
                                                dataset.LEGACY_CAMERA, args.mocap_dir, args.skeleton_map, args.seed)
        if args.rebuild and cache_file.exists():
            cache_file.unlink()
        t0 = time.perf_counter()
        d = dataset.load_pairs(split, stride=args.stride, cameras_per_clip=args.cameras_per_clip,
                               mocap_dir=args.mocap_dir, skeleton_map=args.skeleton_map, seed=args.seed,
                               limit_clips=args.limit_clips, workers=args.workers, progress=True)
        summary["splits"][split] = {
            "clips": int(len(d["clip_names"])), "sequences": int(len(set(d["seq"].tolist()))),
            "samples": int(len(d["frame"])), "seconds": round(time.perf_counter() - t0, 2),
            "visible_fraction": round(float(d["visible"].mean()), 4),
            "mean_conf": round(float(d["conf"].mean()), 4), "cache": str(cache_file),
        }
    own, children = peak_rss_mb()
    summary.update(seconds=round(time.perf_counter() - t_all, 2), peak_rss_mb=own, peak_rss_workers_mb=children)
    json.dump(summary, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
