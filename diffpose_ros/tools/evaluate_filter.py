"""diffpose-evaluate-filter: the per-track filter on motion-capture sequences, against the truth.

Sequences: walking, running and turning clips of a split (default: test; the process noise is
fitted on train, see diffpose_ros/filter/process_noise.py) of the shared BVH mocap, each seen by
`--cameras` random virtual cameras at 3-6 m from the person's mean position
(diffpose_ros.data.virtual_camera), with the project's detector-like 2D noise (data/noise.py,
correlated over time), sampled at 10 and 30 Hz and lifted by the shipped lifter
(diffpose_ros.lifter.lifter.Lifter, frame model by default). Frames in which the person is not
visible enough are missing already (data/sequence.make_sequence); on top of that each sequence
runs with no extra drops, 10 % and 30 % random drops, and one 1 s gap in the middle.

Truth: the mocap pelvis and joints in the camera frame at 30 fps (the camera pose is recovered
from the clean joints of the sequence); true velocity = central differences of the pelvis at
30 fps. The filter runs on the stamps of the rate grid (prediction when a frame is missing) and
is scored at every stamp it reports:
  * root velocity error (mean |v - v_true|, m/s), and against the gait-averaged velocity
    (slope of a 1 s local line fit), with the raw frame-difference velocity for comparison;
  * root and joint (MPJPE) position error, raw lift vs filtered, at the measured stamps, and the
    filtered error at predicted stamps;
  * jitter: mean |second difference| / dt^2 of the joints (m/s^2) over three consecutive
    measured stamps, raw vs filtered (vs the truth's own);
  * consistency: share of stamps whose true root position / velocity lies inside the 90 %
    ellipsoid (chi-square, 3 dof) of the reported covariance;
  * share of measurements refused by the gate.
Lifted sequences are cached (keyed by the lifter weights' hash), so after new weights the
command recomputes them. Also prints a micro-benchmark of the filter's cost per frame.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..lifter.metrics import CHI2_3DOF_90
from ..paths import REPO_DIR, lifter_bundle
from . import common

# v3: sequences carry the lifter's size_var; v4: size_var_track; v5: the root by the
# reprojection fit (lifter/placement.py)
CODE_VERSION = "filter-eval-v5"
DROPS = ("none", "random10", "random30", "gap1s")
MOCAP_FPS = 30.0
WARMUP_S = 1.0                  # metrics are also given without each track's first second


# ---------------------------------------------------------------------------- sequences
def motion_class(clip: str) -> str:
    return "walk" if "_walk" in clip else "run"


def _rigid_fit(src: np.ndarray, dst: np.ndarray):
    """R, t with dst ~ R src + t (Kabsch, least squares; (N, 3) points)."""
    cs, cd = src.mean(0), dst.mean(0)
    U, _, Vt = np.linalg.svd((src - cs).T @ (dst - cd))
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(Vt.T @ U.T))])
    R = Vt.T @ D @ U.T
    return R, cd - R @ cs


def weights_hash(weights: Path) -> str:
    h = hashlib.sha1()
    for f in sorted(Path(weights).glob("*")):
        if f.is_file() and f.suffix in (".pt", ".json", ".npz"):
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def make_sequence_lifted(clip: str, cam_i: int, rate: float, lifter, seed: int = 0,
                         body_scale: float = 1.0, floor_known: bool = False) -> dict | None:
    """One (clip, camera, rate) sequence, lifted; dict of arrays (None if too few frames).
    body_scale: the whole motion scaled about the world origin (a person that much taller doing
    the same motion, stride and speed included). floor_known: the lifter is given the camera's
    height and tilt (lifter/ground.py), as a robot that knows its camera's mounting would."""
    from ..data.sequence import MOCAP_DIR, clip_hash, load_clip_h36m, make_sequence
    from ..data.noise import NoiseConfig
    from ..data.virtual_camera import CameraConfig
    pose, floor, _ = load_clip_h36m(MOCAP_DIR / clip)
    pose, floor = pose * np.float32(body_scale), floor * body_scale
    grid = np.arange(0, len(pose), int(round(MOCAP_FPS / rate)))
    # the same camera at every rate: the generator depends on the clip and camera index only
    rng = np.random.default_rng([seed, clip_hash(clip), cam_i])
    s = make_sequence(pose, floor, grid, rng, NoiseConfig(), CameraConfig(distance_range=(3.0, 6.0)))
    if len(s["frame"]) < 3:
        return None
    true_abs = s["pose3d"].astype(np.float64) + s["root"][:, None].astype(np.float64)
    R, t = _rigid_fit(pose[s["frame"]].reshape(-1, 3).astype(np.float64), true_abs.reshape(-1, 3))
    truth = np.einsum("ij,fkj->fki", R, pose.astype(np.float64)) + t          # (F, 17, 3) at 30 fps
    fit_err = np.abs(truth[s["frame"]] - true_abs).max()
    if fit_err > 1e-3:
        raise RuntimeError(f"{clip}: camera pose not recovered from the sequence ({fit_err:.3g} m)")
    ground = None
    if floor_known:           # the world is Y up: its up in the camera frame, the camera above the floor
        from ..lifter.ground import Ground
        ground = Ground(R[:, 1], float((-R.T @ t)[1] - floor))
    if lifter.temporal:     # frame by frame, so the track's causal window sees the past only
        lifter.reset()
        parts = [lifter.lift(s["keypoints_px"][i:i + 1], s["conf"][i:i + 1], s["K"][0], [0], ground=ground,
                             stamp=s["frame"][i] / MOCAP_FPS) for i in range(len(s["frame"]))]
        get = lambda k: np.concatenate([getattr(q, k) for q in parts])  # noqa: E731
    else:
        res = lifter.lift(s["keypoints_px"], s["conf"], s["K"][0], ground=ground)
        get = lambda k: getattr(res, k)  # noqa: E731
    return {"clip": clip, "camera": cam_i, "rate": float(rate), "body_scale": float(body_scale),
            "grid": grid, "frame": s["frame"],
            "truth": truth, "root": get("root"), "root_cov": get("root_cov"), "rel": get("positions_rel"),
            "rel_cov": get("covariance_rel"), "positions": get("positions"), "size_var": get("size_var"),
            "size_var_track": get("size_var_track")}


def load_or_make_sequences(args, clips, make_lifter) -> list[dict]:
    """All sequences of the run, each cached in its own file (keyed by everything that changes
    it, the lifter weights' hash included), so an interrupted run resumes."""
    from tqdm import tqdm

    from ..paths import cache_dir
    folder = cache_dir() / "filter_eval"
    folder.mkdir(parents=True, exist_ok=True)
    whash = weights_hash(args.weights)
    # a temporal lifter builds its windows on the stamps since 2026-12-07 (lifter/windows.py)
    temporal = json.loads((Path(args.weights) / "config.json").read_text()).get("model") == "temporal"
    lifter = None
    seqs, cached = [], 0
    jobs = [(c, k, r, b) for c in clips for k in range(args.cameras) for r in args.rates for b in args.body_scales]
    for clip, cam_i, rate, body in tqdm(jobs, desc="lifted sequences"):
        key = hashlib.sha1(json.dumps([clip, cam_i, rate, args.seed, whash, args.steps, args.n_hyp, CODE_VERSION]
                                      + ([] if body == 1.0 else [body])
                                      + (["floor"] if args.floor else [])
                                      + (["windows-on-stamps"] if temporal else [])).encode()).hexdigest()[:20]
        path = folder / f"{key}.npz"
        if path.exists() and not args.no_cache:
            with np.load(path, allow_pickle=False) as z:
                d = {k: z[k] for k in z.files}
            cached += 1
            if d.pop("empty", False):
                continue
            d["clip"], d["camera"], d["rate"] = str(d["clip"]), int(d["camera"]), float(d["rate"])
            d["body_scale"] = float(d.get("body_scale", 1.0))
            seqs.append(d)
            continue
        lifter = lifter or make_lifter()
        d = make_sequence_lifted(clip, cam_i, rate, lifter, args.seed, body, args.floor)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **({"empty": True} if d is None else d))
        tmp.replace(path)
        if d is not None:
            seqs.append(d)
    print(f"{len(seqs)} sequences ({cached} from the cache in {folder})")
    return seqs


# ---------------------------------------------------------------------------- filter runs
def drop_mask(seq: dict, kind: str, rng: np.random.Generator) -> np.ndarray:
    """True for the lifted frames that are withheld from the filter."""
    n = len(seq["frame"])
    t = seq["frame"] / MOCAP_FPS
    if kind == "none":
        return np.zeros(n, bool)
    if kind.startswith("random"):
        return rng.random(n) < int(kind[len("random"):]) / 100.0
    if kind == "gap1s":
        g = 0.5 * (t[0] + t[-1]) - 0.5
        return (t >= g - 1e-9) & (t < g + 1.0 - 1e-9)
    raise ValueError(f"unknown drop kind {kind!r}")


def run_filter(seq: dict, dropped: np.ndarray, config, noise=None) -> dict:
    """Run a fresh PeopleFilter over the sequence's grid; per grid stamp outputs (NaN where none).
    noise: a ProcessNoise (default: the shipped process_noise.json)."""
    from ..filter.people_filter import PeopleFilter
    f = PeopleFilter(config, noise)
    grid = seq["grid"]
    idx = {int(fr): i for i, fr in enumerate(seq["frame"]) if not dropped[i]}
    G = len(grid)
    out = {"root": np.full((G, 3), np.nan), "vel": np.full((G, 3), np.nan), "cov": np.full((G, 6, 6), np.nan),
           "pos": np.full((G, 17, 3), np.nan), "meas": np.full(G, -1), "pred": np.zeros(G, bool),
           "gated": np.zeros(G, bool)}
    start = min(idx) if idx else None
    for g, fr in enumerate(grid):
        if start is None or fr < start:
            continue
        t = fr / MOCAP_FPS
        i = idx.get(int(fr))
        if i is None:
            r = f.step(t, [], np.zeros((0, 3)), np.zeros((0, 3, 3)), np.zeros((0, 17, 3)), np.zeros((0, 17, 3, 3)))
        else:
            r = f.step(t, [0], seq["root"][i:i + 1], seq["root_cov"][i:i + 1], seq["rel"][i:i + 1],
                       seq["rel_cov"][i:i + 1], seq["size_var_track"][i:i + 1])
            out["meas"][g] = i
            out["gated"][g] = 0 in r.gated
        s = r.states.get(0)
        if s is None:
            continue
        out["root"][g], out["vel"][g], out["cov"][g] = s.root, s.velocity, s.covariance
        out["pos"][g], out["pred"][g] = s.positions, s.is_prediction
    return out


def _nees_inside(err: np.ndarray, cov: np.ndarray) -> np.ndarray:
    d2 = np.einsum("ni,nij,nj->n", err, np.linalg.inv(cov), err)
    return d2 <= CHI2_3DOF_90


def _jitter(p: np.ndarray, ok: np.ndarray, dt: float) -> np.ndarray:
    """Mean |second difference| / dt^2 over the joints at every triplet of consecutive ok stamps."""
    trip = ok[:-2] & ok[1:-1] & ok[2:]
    acc = (p[2:] - 2 * p[1:-1] + p[:-2])[trip] / dt ** 2
    return np.linalg.norm(acc, axis=-1).mean(axis=-1)


def score(seqs: list[dict], drop: str, config, seed: int = 0, noise=None) -> dict:
    """Metrics of one drop condition over the given sequences."""
    from scipy.signal import savgol_filter
    from ..data.sequence import clip_hash
    rec = {k: [] for k in ("verr", "verr_smooth", "verr_raw", "perr_f", "perr_raw", "perr_pred", "jerr_f",
                           "jerr_raw", "in_p", "in_v", "in_p_pred", "in_v_pred", "jit_raw", "jit_f", "jit_true",
                           "gated", "depth", "nll", "verr_w", "perr_f_w", "perr_raw_w", "in_p_w", "in_v_w")}
    for s in seqs:
        rng = np.random.default_rng([seed, clip_hash(s["clip"]), s["camera"], int(s["rate"]), DROPS.index(drop)])
        out = run_filter(s, drop_mask(s, drop, rng), config, noise)
        grid = s["grid"]
        truth = s["truth"][grid]
        root_t = s["truth"][:, 0]
        v_t = np.gradient(root_t, 1 / MOCAP_FPS, axis=0)[grid]
        win = min(31, len(root_t) - (1 - len(root_t) % 2))
        v_smooth = savgol_filter(root_t, win, 1, deriv=1, delta=1 / MOCAP_FPS, axis=0, mode="interp")[grid]
        have = np.isfinite(out["root"][:, 0])
        meas = out["meas"] >= 0
        dt = 1.0 / s["rate"]
        rec["verr"].append(np.linalg.norm(out["vel"][have] - v_t[have], axis=1))
        rec["verr_smooth"].append(np.linalg.norm(out["vel"][have] - v_smooth[have], axis=1))
        # raw velocity: difference of consecutive measured lifts (only where both are there)
        mi = np.flatnonzero(meas)
        if len(mi) > 1:
            cons = np.diff(mi) == 1
            raw = s["root"][out["meas"][mi]]
            vr = (raw[1:] - raw[:-1])[cons] / dt
            rec["verr_raw"].append(np.linalg.norm(vr - v_t[mi[1:][cons]], axis=1))
        rec["perr_f"].append(np.linalg.norm(out["root"][meas] - truth[meas, 0], axis=1))
        rec["perr_raw"].append(np.linalg.norm(s["root"][out["meas"][meas]] - truth[meas, 0], axis=1))
        pred = have & ~meas
        rec["perr_pred"].append(np.linalg.norm(out["root"][pred] - truth[pred, 0], axis=1))
        rec["jerr_f"].append(np.linalg.norm(out["pos"][meas] - truth[meas], axis=-1).mean(-1))
        rec["jerr_raw"].append(np.linalg.norm(s["positions"][out["meas"][meas]] - truth[meas], axis=-1).mean(-1))
        in_p = _nees_inside(out["root"][have] - truth[have, 0], out["cov"][have][:, :3, :3])
        in_v = _nees_inside(out["vel"][have] - v_t[have], out["cov"][have][:, 3:, 3:])
        e6 = np.concatenate([out["root"][have] - truth[have, 0], out["vel"][have] - v_t[have]], axis=1)
        C = out["cov"][have]
        rec["nll"].append(0.5 * (np.einsum("ni,ni->n", e6, np.linalg.solve(C, e6[..., None])[..., 0])
                                 + np.linalg.slogdet(C)[1] + 6 * np.log(2 * np.pi)))
        rec["in_p"].append(in_p)
        rec["in_v"].append(in_v)
        rec["in_p_pred"].append(in_p[~meas[have]])
        rec["in_v_pred"].append(in_v[~meas[have]])
        raw_pos = np.full_like(out["pos"], np.nan)
        raw_pos[meas] = s["positions"][out["meas"][meas]]
        rec["jit_raw"].append(_jitter(raw_pos, meas, dt))
        rec["jit_f"].append(_jitter(out["pos"], meas, dt))
        rec["jit_true"].append(_jitter(truth, meas, dt))
        rec["gated"].append(out["gated"][meas])
        # the same after the track's first WARMUP_S (the velocity prior of a new track has settled)
        first = np.flatnonzero(have)[0] if have.any() else 0
        warm = (grid - grid[first]) / MOCAP_FPS >= WARMUP_S - 1e-9
        rec["verr_w"].append(np.linalg.norm(out["vel"][have & warm] - v_t[have & warm], axis=1))
        rec["perr_f_w"].append(np.linalg.norm(out["root"][meas & warm] - truth[meas & warm, 0], axis=1))
        rec["perr_raw_w"].append(np.linalg.norm(s["root"][out["meas"][meas & warm]] - truth[meas & warm, 0], axis=1))
        rec["in_p_w"].append(in_p[warm[have]])
        rec["in_v_w"].append(in_v[warm[have]])
        rec["depth"].append(truth[have, 0, 2])
    c = {k: np.concatenate(v) if v else np.zeros(0) for k, v in rec.items()}
    m = lambda k: float(c[k].mean()) if c[k].size else float("nan")  # noqa: E731
    return {
        "sequences": len(seqs), "stamps": int(c["verr"].size), "predicted_stamps": int(c["in_p_pred"].size),
        "velocity_error_mps": m("verr"), "velocity_error_vs_gait_averaged_mps": m("verr_smooth"),
        "velocity_error_raw_differences_mps": m("verr_raw"),
        "root_error_raw_m": m("perr_raw"), "root_error_filtered_m": m("perr_f"),
        "root_error_predicted_m": m("perr_pred"),
        "mpjpe_raw_m": m("jerr_raw"), "mpjpe_filtered_m": m("jerr_f"),
        "jitter_raw_mps2": m("jit_raw"), "jitter_filtered_mps2": m("jit_f"), "jitter_true_mps2": m("jit_true"),
        "jitter_ratio_raw_over_filtered": m("jit_raw") / m("jit_f") if c["jit_f"].size else float("nan"),
        "consistency90_position": m("in_p"), "consistency90_velocity": m("in_v"),
        "consistency90_position_predicted": m("in_p_pred"), "consistency90_velocity_predicted": m("in_v_pred"),
        "gated_share": m("gated"),
        "nll_true_state": m("nll"),
        "after_warmup": {"warmup_s": WARMUP_S, "velocity_error_mps": m("verr_w"), "root_error_raw_m": m("perr_raw_w"),
                         "root_error_filtered_m": m("perr_f_w"), "consistency90_position": m("in_p_w"),
                         "consistency90_velocity": m("in_v_w")},
        "depth_m_p5_p95": [float(np.percentile(c["depth"], 5)), float(np.percentile(c["depth"], 95))]
        if c["depth"].size else [],
    }


# ---------------------------------------------------------------------------- measurement errors
def fit_measurement_errors(seqs: list[dict], max_lag_s: float = 1.0) -> dict:
    """How the lifter's root errors behave over time and in their tails, as the filter sees them:
    demeaned per sequence (a sequence's constant offset, the body size above all, is a bias no
    filter can remove; the filter carries it as the lifter's size term) and against the lifter's
    root covariance without that term (people_filter.without_size). Correlation: the integrated
    correlation time per axis, tau = dt (1 + 2 sum rho_k), at the highest rate among the
    sequences, errors whitened by that std; the sum stops at the first negative rho_k or at
    max_lag_s. Tails: Student-t dof by maximum likelihood. Also reported: the share of the raw
    errors inside the lifter's own (full) 90 % ellipsoids."""
    from ..filter.people_filter import without_size
    raw = [s["root"] - s["truth"][s["frame"], 0] for s in seqs]               # (F, 3) per sequence
    demeaned = [e - e.mean(axis=0) for e in raw]
    r_ind = [without_size(s["root_cov"], s["root"], s["size_var_track"]) for s in seqs]
    rate = max(s["rate"] for s in seqs)
    step = int(round(MOCAP_FPS / rate))
    num, den0, den1 = {}, {}, {}
    samples = 0
    for s, e, R in zip(seqs, demeaned, r_ind):
        if s["rate"] != rate:
            continue
        e = e / np.sqrt(np.diagonal(R, axis1=1, axis2=2))
        pos = {int(f): i for i, f in enumerate(s["frame"])}
        samples += len(e)
        for k in range(1, int(max_lag_s * rate) + 1):
            pairs = [(i, pos[f + k * step]) for f, i in pos.items() if f + k * step in pos]
            if not pairs:
                continue
            a, b = (np.array(x) for x in zip(*pairs))
            num[k] = num.get(k, 0.0) + (e[a] * e[b]).sum(0)
            den0[k] = den0.get(k, 0.0) + (e[a] ** 2).sum(0)
            den1[k] = den1.get(k, 0.0) + (e[b] ** 2).sum(0)
    if not num:
        raise ValueError("no consecutive lifted frames to measure the error correlation on")
    rho = np.array([num[k] / np.sqrt(den0[k] * den1[k]) for k in sorted(num)])       # (lags, 3)
    tau = []
    for axis in range(3):
        r = rho[:, axis]
        stop = np.flatnonzero(r < 0)
        r = r[: stop[0]] if stop.size else r
        tau.append(float((1 + 2 * r.sum()) / rate))
    # tails: Student-t with the lifter's covariance as its scale, dof by maximum likelihood
    from scipy.special import gammaln
    d2_raw = np.concatenate([np.einsum("fi,fij,fj->f", e, np.linalg.inv(s["root_cov"]), e) for s, e in zip(seqs, raw)])
    d2 = np.concatenate([np.einsum("fi,fij,fj->f", e, np.linalg.inv(R), e) for e, R in zip(demeaned, r_ind)])
    nus = np.exp(np.linspace(0.0, np.log(200.0), 400))
    ll = [np.sum(gammaln((v + 3) / 2) - gammaln(v / 2) - 1.5 * np.log(v) - (v + 3) / 2 * np.log1p(d2 / v)) for v in nus]
    return {"correlation_s": [round(t, 4) for t in tau], "student_t_dof": round(float(nus[int(np.argmax(ll))]), 2),
            "share_inside_chi2_90": round(float((d2_raw <= CHI2_3DOF_90).mean()), 3),
            "share_inside_chi2_90_demeaned_without_size": round(float((d2 <= CHI2_3DOF_90).mean()), 3), "rate_hz": rate,
            "samples": samples, "lag1_correlation": [round(float(v), 3) for v in rho[0]]}


SCALES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)


def select_measurement_model(seqs: list[dict], fit: dict, drops=("none", "gap1s"), scales=SCALES,
                             seed: int = 0) -> dict:
    """The filter's error model, chosen by the lowest mean negative log-likelihood of the true
    root state (position, velocity) under the filter's output, averaged over rates and drop
    conditions (a proper score: accuracy and honest covariances both count): the root
    process-noise scale (the mocap fit describes the smooth path of most frames; rare manoeuvres,
    turning round, may need more) and whether the fitted Student-t tails and error correlation
    time help at all (each is fitted on its own; together with the filter they may not)."""
    import dataclasses
    from ..filter.people_filter import FilterConfig
    from ..filter.process_noise import load_process_noise
    base = load_process_noise("cv")
    rates = sorted({s["rate"] for s in seqs})
    table = {}
    for tails in ("student_t", "gaussian"):
        for corr in ("correlated", "independent"):
            noise = dataclasses.replace(
                base, measurement_dof=fit["student_t_dof"] if tails == "student_t" else np.inf,
                measurement_correlation_s=np.array(fit["correlation_s"] if corr == "correlated" else [0.0] * 3))
            for scale in scales:
                config = FilterConfig(process_noise_scale=scale)
                vals = [score([s for s in seqs if s["rate"] == r], d, config, seed, noise)["nll_true_state"]
                        for r in rates for d in drops]
                table[(tails, corr, scale)] = float(np.mean(vals))
                print(f"  {tails:9s} {corr:11s} root process noise x{scale:g}: mean NLL of the true state "
                      f"{table[(tails, corr, scale)]:.3f}", flush=True)
    tails, corr, scale = min(table, key=table.get)
    return {"process_noise_scale": scale, "tails": tails, "errors_over_time": corr,
            "nll": {f"{t}/{c}/x{k:g}": round(v, 4) for (t, c, k), v in table.items()},
            "drops": list(drops), "rates_hz": rates}


# ---------------------------------------------------------------------------- benchmark, plot
def benchmark(seq: dict, config, people=(1, 3), frames: int = 300) -> dict:
    """Median cost of PeopleFilter.step per frame (ms) with 1 and 3 tracked people."""
    from ..filter.people_filter import PeopleFilter
    res = {}
    n = len(seq["frame"])
    for P in people:
        f = PeopleFilter(config)
        times = []
        for k in range(frames):
            i = k % n
            ids = list(range(P))
            sl = lambda a: np.repeat(a[i:i + 1], P, axis=0)  # noqa: E731
            t0 = time.perf_counter()
            f.step(100.0 + k / 30.0, ids, sl(seq["root"]) + np.arange(P)[:, None], sl(seq["root_cov"]),
                   sl(seq["rel"]), sl(seq["rel_cov"]), sl(seq["size_var_track"]))
            times.append(time.perf_counter() - t0)
        res[f"{P}_people_ms_p50"] = float(np.median(times[20:]) * 1e3)
        res[f"{P}_people_ms_p90"] = float(np.percentile(times[20:], 90) * 1e3)
    return res


def plot(seq: dict, config, path: Path, table: dict):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rng = np.random.default_rng(0)
    dropped = drop_mask(seq, "gap1s", rng)
    out = run_filter(seq, dropped, config)
    t = seq["grid"] / MOCAP_FPS
    truth = seq["truth"][:, 0]
    v_t = np.gradient(truth, 1 / MOCAP_FPS, axis=0)
    tt = np.arange(len(truth)) / MOCAP_FPS
    k90 = np.sqrt(2.705543454095404)        # 90 % of a 1-D Gaussian: +-1.645 sigma
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.6))
    ax = axes[0]
    meas_t = seq["frame"] / MOCAP_FPS
    ax.plot(tt, truth[:, 2], "k-", lw=1.5, label="true depth")
    ax.plot(meas_t[~dropped], seq["root"][~dropped, 2], ".", color="tab:red", ms=5, label="lifted root (raw)")
    sd = np.sqrt(out["cov"][:, 2, 2])
    ax.plot(t, out["root"][:, 2], "-", color="tab:blue", label="filtered")
    ax.fill_between(t, out["root"][:, 2] - k90 * sd, out["root"][:, 2] + k90 * sd, color="tab:blue", alpha=0.2,
                    label="filtered 90 % band")
    gap = meas_t[dropped]
    if gap.size:
        ax.axvspan(gap.min(), gap.max(), color="0.85", label="1 s gap (no input)")
    ax.set_xlabel("time [s]"); ax.set_ylabel("depth z [m]"); ax.legend(fontsize=8)
    ax.set_title(f"{Path(seq['clip']).stem}, {seq['rate']:.0f} Hz, body x{seq['body_scale']:g}")
    ax = axes[1]
    speed_t = np.linalg.norm(v_t[:, [0, 2]], axis=1)
    ax.plot(tt, v_t[:, 2], "k-", lw=1, label="true v_z")
    ax.plot(tt, v_t[:, 0], "-", color="0.5", lw=1, label="true v_x")
    for j, c in ((2, "tab:blue"), (0, "tab:green")):
        sdv = np.sqrt(out["cov"][:, 3 + j, 3 + j])
        ax.plot(t, out["vel"][:, j], "-", color=c, label=f"filtered v_{'xyz'[j]}")
        ax.fill_between(t, out["vel"][:, j] - k90 * sdv, out["vel"][:, j] + k90 * sdv, color=c, alpha=0.15)
    if gap.size:
        ax.axvspan(gap.min(), gap.max(), color="0.85")
    ax.set_xlabel("time [s]"); ax.set_ylabel("velocity [m/s]"); ax.legend(fontsize=8)
    ax.set_title(f"root velocity (true horizontal speed {speed_t.mean():.2f} m/s)")
    ax = axes[2]
    labels, pos, vel = [], [], []
    for (rate, drop), r in table.items():
        labels.append(f"{rate:.0f} Hz\n{drop}")
        pos.append(r["consistency90_position"])
        vel.append(r["consistency90_velocity"])
    x = np.arange(len(labels))
    ax.bar(x - 0.2, pos, 0.4, label="position")
    ax.bar(x + 0.2, vel, 0.4, label="velocity")
    ax.axhspan(0.85, 0.95, color="tab:green", alpha=0.15, label="target 0.85-0.95")
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylim(0.5, 1.0); ax.set_ylabel("share inside the 90 % ellipsoid"); ax.legend(fontsize=8)
    ax.set_title("consistency of the filtered root")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _repo_relative(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(REPO_DIR) if path.is_relative_to(REPO_DIR) else path)


# ---------------------------------------------------------------------------- main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="diffpose-evaluate-filter", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--split", default="test", help="clip split to evaluate on (default: test)")
    p.add_argument("--limit-clips", type=int, default=None)
    p.add_argument("--cameras", type=int, default=2, help="virtual cameras per clip")
    p.add_argument("--rates", type=float, nargs="+", default=[10.0, 30.0])
    p.add_argument("--body-scales", type=float, nargs="+", default=[1.0],
                   help="run every clip also with the skeleton (and its motion) scaled by these factors "
                        "(body size is what one camera cannot see; the shipped table uses 0.9 1.0 1.15)")
    p.add_argument("--drops", nargs="+", default=list(DROPS), choices=DROPS)
    p.add_argument("--models", nargs="+", default=["cv"], choices=["cv", "ca"],
                   help="motion models to compare (the first one is plotted)")
    p.add_argument("--weights", type=lifter_bundle, default="",
                   help="DiffPose bundle: frame or temporal (the bundled ones) or a folder; default frame")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--n-hyp", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default="onnxruntime", help="sampler backend of the lifter (torch, onnxruntime, ...)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-cache", action="store_true", help="lift again even if cached")
    p.add_argument("--floor", action="store_true",
                   help="give the lifter each camera's height and tilt: body size from the floor (lifter/ground.py)")
    p.add_argument("--out", type=Path, default=REPO_DIR / "docs" / "filter_evaluation.json")
    p.add_argument("--plot", type=common.plot_path, default=REPO_DIR / "docs" / "filter_evaluation.png",
                   help='"none": no plot')
    p.add_argument("--fit-measurement", action="store_true",
                   help="fit the tails and correlation time of the lifter's root errors on these sequences (a split "
                        "other than the evaluation's, e.g. --split val) into the filter's process_noise.json")
    p.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                   help="FilterConfig fields, e.g. gate_probability=0.9999")
    args = p.parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    from ..filter.people_filter import FilterConfig
    from ..filter.process_noise import motion_clips
    from ..lifter.lifter import Lifter
    clips = motion_clips(args.split)[: args.limit_clips]
    if not clips:
        print(f"diffpose-evaluate-filter: error: no walking/running/turning clips in split {args.split!r}",
              file=sys.stderr)
        return 2
    overrides = {}
    for item in args.set:
        name, _, value = item.partition("=")
        kind = type(getattr(FilterConfig(), name))
        overrides[name] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    def make_lifter():
        runner = None
        if args.backend != "torch":   # the node's backends run the same sampler
            from ..backends import make_backend
            runner = make_backend(args.backend, args.weights, steps=args.steps, threads=args.threads)  # any N
        return Lifter(args.weights, steps=args.steps, n_hyp=args.n_hyp, seed=args.seed, runner=runner)
    seqs = load_or_make_sequences(args, clips, make_lifter)
    if args.fit_measurement:
        from ..filter.process_noise import NOISE_FILE
        fit = fit_measurement_errors(seqs)
        data = json.loads(NOISE_FILE.read_text())
        data["measurement"] = {}           # the selection starts from the unscaled mocap fit
        NOISE_FILE.write_text(json.dumps(data, indent=1) + "\n")
        fit.update(select_measurement_model(seqs, fit, seed=args.seed))
        # what the filter uses (process_noise.load_process_noise): the fitted values where chosen
        fit["fitted_student_t_dof"], fit["fitted_correlation_s"] = fit.pop("student_t_dof"), fit.pop("correlation_s")
        fit["student_t_dof"] = fit["fitted_student_t_dof"] if fit["tails"] == "student_t" else None
        fit["correlation_s"] = fit["fitted_correlation_s"] if fit["errors_over_time"] == "correlated" else [0.0] * 3
        fit["provenance"] = {"command": "diffpose-evaluate-filter " + " ".join(argv if argv is not None else sys.argv[1:]),
                             "split": args.split, "clips": len(clips), "cameras_per_clip": args.cameras,
                             "weights": _repo_relative(args.weights), "weights_hash": weights_hash(args.weights),
                             "date": time.strftime("%Y-%m-%d")}
        data = json.loads(NOISE_FILE.read_text())
        data["measurement"] = fit
        NOISE_FILE.write_text(json.dumps(data, indent=1) + "\n")
        print(f"chosen (lowest NLL): root process noise x{fit['process_noise_scale']:g}, {fit['tails']} errors, "
              f"{fit['errors_over_time']} over time")
        print(f"lifter root errors: Student-t dof {fit['fitted_student_t_dof']}, {fit['share_inside_chi2_90']} inside the "
              f"lifter's 90 % ellipsoid ({fit['share_inside_chi2_90_demeaned_without_size']} demeaned, without the "
              f"size term); correlation time {fit['fitted_correlation_s']} s (lag-1 correlation "
              f"{fit['lag1_correlation']} at {fit['rate_hz']:g} Hz, {fit['samples']} samples) -> {NOISE_FILE}")
        return 0
    result = {"split": args.split, "clips": len(clips), "sequences": len(seqs), "cameras_per_clip": args.cameras,
              "weights": _repo_relative(args.weights),
              "weights_hash": weights_hash(args.weights), "steps": args.steps, "n_hyp": args.n_hyp,
              "floor_known": bool(args.floor),
              "command": "diffpose-evaluate-filter " + " ".join(argv if argv is not None else sys.argv[1:]),
              "models": {}}
    first_table = None
    for model in args.models:
        config = FilterConfig(model=model, **overrides)
        tables = {}
        print(f"\nmodel {model}: {asdict(config)}")
        print(f"{'rate':>4} {'drops':>8} {'class':>5} | {'v err':>5} {'v(avg)':>6} {'v raw':>5} | {'root raw':>8} "
              f"{'filt':>5} {'pred':>5} | {'mpjpe raw':>9} {'filt':>5} | {'jitter raw':>10} {'filt':>5} {'x':>4} | "
              f"{'in90 p':>6} {'v':>5} {'pred p':>6} {'v':>5} | gated")
        by_size = [f"x{b:g}" for b in args.body_scales] if len(args.body_scales) > 1 else []
        for rate in args.rates:
            for drop in args.drops:
                for cls in ["all", "walk", "run"] + by_size:
                    sub = [s for s in seqs if s["rate"] == rate and (
                        cls == "all" or (f"x{s['body_scale']:g}" == cls if cls.startswith("x") else
                                         motion_class(s["clip"]) == cls))]
                    if not sub:
                        continue
                    r = score(sub, drop, config, args.seed)
                    tables[f"{rate:g}Hz/{drop}/{cls}"] = r
                    print(f"{rate:4.0f} {drop:>8} {cls:>5} | {r['velocity_error_mps']:5.2f} "
                          f"{r['velocity_error_vs_gait_averaged_mps']:6.2f} {r['velocity_error_raw_differences_mps']:5.2f} | "
                          f"{r['root_error_raw_m']:8.3f} {r['root_error_filtered_m']:5.3f} {r['root_error_predicted_m']:5.3f} | "
                          f"{r['mpjpe_raw_m']:9.3f} {r['mpjpe_filtered_m']:5.3f} | {r['jitter_raw_mps2']:10.1f} "
                          f"{r['jitter_filtered_mps2']:5.1f} {r['jitter_ratio_raw_over_filtered']:4.1f} | "
                          f"{r['consistency90_position']:6.3f} {r['consistency90_velocity']:5.3f} "
                          f"{r['consistency90_position_predicted']:6.3f} {r['consistency90_velocity_predicted']:5.3f} | "
                          f"{r['gated_share']:.3f}", flush=True)
        bench = benchmark(seqs[0], config)
        print(f"filter cost per frame (PeopleFilter.step, this machine): 1 person {bench['1_people_ms_p50']:.3f} ms, "
              f"3 people {bench['3_people_ms_p50']:.3f} ms (median)")
        result["models"][model] = {"config": asdict(config), "results": tables, "benchmark": bench}
        if first_table is None:
            first_table = {(rate, drop): tables[f"{rate:g}Hz/{drop}/all"] for rate in args.rates for drop in args.drops
                           if f"{rate:g}Hz/{drop}/all" in tables}
            first_config = config
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    walk10 = [s for s in seqs if s["rate"] == 10.0 and motion_class(s["clip"]) == "walk"] or seqs
    walk10 = [s for s in walk10 if s["body_scale"] == 1.0] or walk10      # the skeleton as captured
    if args.plot:
        plot(max(walk10, key=lambda s: len(s["frame"])), first_config, args.plot, first_table)
        print(f"plot -> {args.plot}")
    print(f"results -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
