"""How the per-track filter treats the body-size error when the size comes from the floor: the
whole size term carried as a per-track bias (the "consider" parameter, people_filter.py) against
only the prior's share of it (LiftResult.size_var_track; the floor measurement's own error then
stays in the measurement noise and averages over frames), scored on the same lifted sequences.

    .venv/bin/diffpose-evaluate-filter --split val --cameras 1 --body-scales 0.9 1.0 1.15 --models cv \
        --floor --out /tmp/val.json --plot none          # lifts and caches the sequences
    .venv/bin/python scripts/filter_size_share_ab.py --split val --floor

Prints, per rate and drop pattern, the walking velocity error, root error, jitter ratio, the
share of true positions and velocities inside the 90 % ellipsoids (all sizes and per size) and
the negative log-likelihood of the true state; writes docs/filter_size_share_<split>.json. The
choice was made on --split val (NLL).
"""

import argparse
import json
from pathlib import Path

import numpy as np

from diffpose_ros.filter.people_filter import FilterConfig
from diffpose_ros.filter.process_noise import motion_clips
from diffpose_ros.paths import REPO_DIR, WEIGHTS_DIR
from diffpose_ros.tools import evaluate_filter as E

SIZES = (0.9, 1.0, 1.15)


def not_cached():
    raise SystemExit("the sequences are not cached: run diffpose-evaluate-filter with the same split first")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--split", default="val")
    p.add_argument("--floor", action="store_true")
    p.add_argument("--weights", type=Path, default=WEIGHTS_DIR / "frame")
    a = p.parse_args()
    args = argparse.Namespace(weights=a.weights, cameras=1, rates=[10.0, 30.0], body_scales=list(SIZES), seed=0,
                              steps=5, n_hyp=5, floor=a.floor, no_cache=False)
    new = E.load_or_make_sequences(args, motion_clips(a.split), not_cached)
    old = [dict(s, size_var_track=s["size_var"]) for s in new]       # the whole size term as a bias
    share = np.concatenate([s["size_var_track"] / np.maximum(s["size_var"], 1e-12) for s in new])
    print(f"track share of the size variance: median {np.median(share):.3f}, "
          f"p10 {np.percentile(share, 10):.3f}, p90 {np.percentile(share, 90):.3f}")
    cfg, out = FilterConfig(), {}
    for rate in args.rates:
        for drop in E.DROPS:
            for name, seqs in (("whole size term", old), ("track share", new)):
                sub = [s for s in seqs if s["rate"] == rate]
                r = E.score(sub, drop, cfg, 0)
                w = E.score([s for s in sub if E.motion_class(s["clip"]) == "walk"], drop, cfg, 0)
                by = [E.score([s for s in sub if s["body_scale"] == b], drop, cfg, 0)["consistency90_position"]
                      for b in SIZES]
                out[f"{rate:g}Hz/{drop}/{name}"] = dict(r, walk=w, position_inside_by_size=by)
                print(f"{rate:4.0f} {drop:>8} {name:>16} | walking v {w['velocity_error_mps']:.3f} "
                      f"({w['velocity_error_vs_gait_averaged_mps']:.3f}) | root {r['root_error_raw_m']:.3f} -> "
                      f"{r['root_error_filtered_m']:.3f} m | jitter x{r['jitter_ratio_raw_over_filtered']:.1f} | inside 90 % "
                      f"position {r['consistency90_position']:.3f} velocity {r['consistency90_velocity']:.3f} | by size "
                      + " ".join(f"{x:.3f}" for x in by) + f" | NLL {r['nll_true_state']:.3f}", flush=True)
    path = REPO_DIR / "docs" / f"filter_size_share_{a.split}{'_floor' if a.floor else ''}.json"
    path.write_text(json.dumps({"split": a.split, "floor": a.floor, "track_share_median": float(np.median(share)),
                                "results": out}, indent=1) + "\n")
    print(f"-> {path}")


if __name__ == "__main__":
    main()
