"""Time the root placement of the node's batch: the pose and its N hypotheses of P people
(`place_hypotheses`), on synthetic person-like scenes with keypoint noise; alternating rounds
against another version of lifter/placement.py when --against is given (e.g. the file of an
older checkout: `git show REV:diffpose_ros/lifter/placement.py > /tmp/placement_old.py`).

  python scripts/bench_placement.py --against /tmp/placement_old.py
"""
import argparse
import importlib.util
import inspect
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def scene(rng, people: int, n_hyp: int):
    pose = rng.standard_normal((people, 17, 3)) * np.array([0.2, 0.45, 0.15])
    pose -= pose[:, :1]
    root = np.stack([rng.uniform(-1, 1, people), rng.uniform(-0.3, 0.3, people), rng.uniform(2, 8, people)], -1)
    cam = pose + root[:, None]
    kn = cam[..., :2] / cam[..., 2:] + rng.standard_normal((people, 17, 2)) * 0.004
    hyps = pose[:, None] + rng.standard_normal((people, n_hyp, 17, 3)) * 0.03
    return kn, np.full((people, 17), 0.002), pose, hyps, np.ones((people, 17))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--against", type=Path, help="another placement.py to time beside this one")
    p.add_argument("--people", type=int, nargs="+", default=[1, 3])
    p.add_argument("--n-hyp", type=int, default=5)
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    versions = {"this": load(REPO / "diffpose_ros" / "lifter" / "placement.py", "placement_this")}
    if args.against:
        versions["against"] = load(args.against, "placement_against")
    rng = np.random.default_rng(0)
    out = {}
    for people in args.people:
        kn, sig, pose, hyps, conf = scene(rng, people, args.n_hyp)
        times = {k: [] for k in versions}
        for _ in range(args.rounds):
            for name, mod in versions.items():
                takes_conf = "conf" in inspect.signature(mod.place_hypotheses).parameters
                extra = (conf,) if takes_conf else ()
                t0 = time.perf_counter()
                for _ in range(args.calls):
                    mod.place_hypotheses(kn, sig, pose, hyps, *extra)
                times[name].append(1000 * (time.perf_counter() - t0) / args.calls)
        out[f"{people} people"] = {k: {"median_ms": round(float(np.median(v)), 3), "rounds_ms": [round(x, 3) for x in v]}
                                   for k, v in times.items()}
        print(f"{people} people, N = {args.n_hyp}: " + ", ".join(
            f"{k} {out[f'{people} people'][k]['median_ms']:.2f} ms" for k in versions), flush=True)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
