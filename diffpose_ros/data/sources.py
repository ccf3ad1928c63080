"""Where motion clips come from: the shared motion capture, the user's BVH folders, Human3.6M.

A *source spec* (what `diffpose-train --data` takes, any number of them) names one source:

  shared[:sources=bandai-namco-1,cmu-iclone,...][:weight=W]
      the shared data: Bandai Namco 1 and 2 (../shared/data/mocap) and the four CMU archives
      (../shared/data/mocap-cmu, unpacked once into the cache directory, never into shared/);
  bvh:/path/to/folder[:map=NAME_OR_JSON][:units=cm][:fps=120][:drop=1][:weight=W][:name=NAME]
      every .bvh file under the folder (recursively). `map`: a shipped skeleton map name
      (data/skeleton_maps) or a JSON file; default: auto-detected from each file's joint names.
      `units`: file length unit (m, cm, mm, in, cmu or a number of metres per unit; default the
      map's, else cm). `fps`: true frame rate (default: each file's Frame Time). `drop`: frames to
      drop at the start of every file (e.g. 1 for a T-pose frame 0). `name`: the source name
      (default bvh-<folder name>);
  h36m:/path/data_3d_h36m.npz[:subjects=S1,S5,...][:weight=W]
      Human3.6M 3D poses in VideoPose3D's npz format, the training subjects (S1 S5 S6 S7 S8)
      unless `subjects` says otherwise.

`weight` scales the sampling probability of every frame of that source (data/generator.py).
A bad spec is a SourceSpecError naming the spec and what is wrong with it.

Metadata per clip (ClipRef): source, action, style, subject, category, true fps, frames to drop,
from the file names (Bandai Namco: dataset-<n>_<action>_<style>_<take>.bvh) or the CMU manifest
(mocap-cmu/manifest.tsv: true_fps, frame0_tpose, subject, description, category).
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from diffpose_ros import paths
from diffpose_ros.data.bvh import UNIT_SCALES

CMU_DIR = paths.SHARED_DATA / "mocap-cmu"
BANDAI_SOURCES = ("bandai-namco-1", "bandai-namco-2")
# archive stem -> (source name, skeleton map)
CMU_ARCHIVES = {
    "cmu_iclone_cc3": ("cmu-iclone", "iclone_cc3"),
    "cmu_daz_acrnn": ("cmu-daz-acrnn", "daz"),
    "cmu_daz_jaanga": ("cmu-daz-jaanga", "daz"),
    "cmu_mb_fairmotion": ("cmu-mb-fairmotion", "cmu_mb"),
}
SHARED_SOURCES = BANDAI_SOURCES + tuple(s for s, _ in CMU_ARCHIVES.values())
BANDAI_FPS = 30.0
_BANDAI_NAME = re.compile(r"^dataset-(\d+)_([^_]+)_([^_]+)_(\d+)\.bvh$")


class SourceSpecError(ValueError):
    """A data source spec that cannot be used; the message names the spec."""


@dataclass(frozen=True)
class ClipRef:
    """One clip to load. `key` ("<source>/<relative path>") is stable and seeds splits and draws."""
    kind: str                      # "bvh" or "h36m"
    path: str                      # the BVH file, or the Human3.6M npz
    key: str
    source: str
    action: str = ""
    style: str = ""
    subject: str = ""
    category: str = ""
    fps: float | None = None       # true frame rate; None: the BVH header's
    drop_first: int = 0            # frames dropped at the start (a T-pose frame 0)
    skeleton_map: str | None = None
    unit_scale: float | None = None
    position_channels: str | None = None
    weight: float = 1.0
    item: str = ""                 # h36m: "<subject>/<action>" inside the npz
    description: str = ""          # CMU: the trial description of the manifest

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SourceSpec:
    kind: str
    path: str = ""
    options: tuple = ()            # sorted (key, value) pairs

    @property
    def opts(self) -> dict:
        return dict(self.options)

    def __str__(self):
        return ":".join([self.kind] + ([self.path] if self.path else []) + [f"{k}={v}" for k, v in self.options])


_OPTIONS = {
    "shared": {"sources", "weight"},
    "bvh": {"map", "units", "fps", "drop", "weight", "name", "position_channels"},
    "h36m": {"subjects", "weight"},
}


def parse_source_spec(text: str) -> SourceSpec:
    """'kind[:path][:key=value]...' -> SourceSpec; SourceSpecError with the reason."""
    if not isinstance(text, str) or not text.strip():
        raise SourceSpecError(f"empty data source spec {text!r}; use one of {sorted(_OPTIONS)}")
    text = text.strip()
    kind, _, rest = text.partition(":")
    if kind not in _OPTIONS:
        raise SourceSpecError(f"data source spec {text!r}: unknown kind {kind!r}; use shared, "
                              f"bvh:/folder[:map=...] or h36m:/file.npz")
    parts = rest.split(":") if rest else []
    # options are the trailing key=value parts; the path is what comes before them (it may hold ':')
    n_opt = 0
    while n_opt < len(parts) and re.fullmatch(r"[a-z_]+=.*", parts[len(parts) - 1 - n_opt]):
        n_opt += 1
    path = ":".join(parts[:len(parts) - n_opt])
    opts = {}
    for p in parts[len(parts) - n_opt:]:
        k, _, v = p.partition("=")
        if k not in _OPTIONS[kind]:
            raise SourceSpecError(f"data source spec {text!r}: unknown option {k!r} for {kind}; "
                                  f"known: {sorted(_OPTIONS[kind])}")
        if k in opts:
            raise SourceSpecError(f"data source spec {text!r}: option {k!r} given twice")
        if not v:
            raise SourceSpecError(f"data source spec {text!r}: option {k!r} has no value")
        opts[k] = v
    if kind == "shared" and path:
        raise SourceSpecError(f"data source spec {text!r}: 'shared' takes no path (options only, "
                              f"e.g. shared:sources=bandai-namco-1)")
    if kind != "shared" and not path:
        raise SourceSpecError(f"data source spec {text!r}: {kind} needs a path, e.g. {kind}:/data/"
                              + ("my_bvh_folder" if kind == "bvh" else "data_3d_h36m.npz"))
    for k in ("weight", "fps"):
        if k in opts:
            try:
                val = float(opts[k])
            except ValueError:
                raise SourceSpecError(f"data source spec {text!r}: {k}={opts[k]!r} is not a number") from None
            if not val > 0 or val != val or val == float("inf"):
                raise SourceSpecError(f"data source spec {text!r}: {k} must be a positive number, got {opts[k]}")
    if "drop" in opts and not opts["drop"].isdigit():
        raise SourceSpecError(f"data source spec {text!r}: drop must be a whole number of frames, got {opts['drop']!r}")
    if "units" in opts:
        _unit_scale(opts["units"], text)
    if "position_channels" in opts and opts["position_channels"] not in ("replace", "add"):
        raise SourceSpecError(f"data source spec {text!r}: position_channels must be replace or add")
    if "sources" in opts:
        unknown = sorted(set(opts["sources"].split(",")) - set(SHARED_SOURCES))
        if unknown:
            raise SourceSpecError(f"data source spec {text!r}: unknown shared sources {unknown}; "
                                  f"known: {list(SHARED_SOURCES)}")
    if "map" in opts:
        from diffpose_ros.data.mapping import load_map
        try:
            load_map(opts["map"])
        except ValueError as e:
            raise SourceSpecError(f"data source spec {text!r}: {e}") from None
    return SourceSpec(kind, path, tuple(sorted(opts.items())))


def _unit_scale(units: str, spec: str = "") -> float:
    if units in UNIT_SCALES:
        return UNIT_SCALES[units]
    try:
        val = float(units)
    except ValueError:
        val = -1.0
    if not val > 0:
        raise SourceSpecError(f"data source spec {spec!r}: units {units!r} is neither one of "
                              f"{sorted(UNIT_SCALES)} nor a positive number of metres per unit")
    return val


def resolve(specs) -> list[ClipRef]:
    """Clips of the given specs (strings or SourceSpec; None = ['shared']), in a stable order."""
    if specs is None:
        specs = ["shared"]
    if isinstance(specs, (str, SourceSpec)):
        specs = [specs]
    clips: list[ClipRef] = []
    for s in specs:
        spec = parse_source_spec(s) if isinstance(s, str) else s
        clips += {"shared": _shared_clips, "bvh": _bvh_folder_clips, "h36m": _h36m_clips}[spec.kind](spec)
    keys = [c.key for c in clips]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise SourceSpecError(f"the same clip comes from two specs: {dup[:3]}")
    return clips


# ------------------------------------------------------------------ shared data

def bandai_metadata(filename: str) -> dict:
    """{'dataset', 'action', 'style', 'take'} from dataset-<n>_<action>_<style>_<take>.bvh."""
    m = _BANDAI_NAME.match(filename)
    if not m:
        raise ValueError(f"{filename}: not a Bandai Namco file name (dataset-<n>_<action>_<style>_<take>.bvh)")
    return {"dataset": int(m.group(1)), "action": m.group(2), "style": m.group(3), "take": m.group(4)}


def _shared_clips(spec: SourceSpec) -> list[ClipRef]:
    opts = spec.opts
    wanted = opts["sources"].split(",") if "sources" in opts else list(SHARED_SOURCES)
    weight = float(opts.get("weight", 1.0))
    clips = []
    for source in BANDAI_SOURCES:
        if source not in wanted:
            continue
        folder = paths.MOCAP_DIR / source
        if not folder.is_dir():
            raise SourceSpecError(f"shared source {source}: folder {folder} not found (../shared/data missing?)")
        for f in sorted(folder.glob("*.bvh")):
            meta = bandai_metadata(f.name)
            clips.append(ClipRef("bvh", str(f), f"{source}/{f.name}", source, meta["action"], meta["style"],
                                 "", meta["action"], BANDAI_FPS, 0, "bandai_namco", weight=weight))
    cmu_wanted = [a for a, (s, _) in CMU_ARCHIVES.items() if s in wanted]
    if cmu_wanted:
        roots = {stem: unpack_cmu(stem) for stem in cmu_wanted}
        for row in cmu_manifest():
            stem = row["archive"].removesuffix(".tar.xz")
            if stem not in cmu_wanted:
                continue
            source, skel = CMU_ARCHIVES[stem]
            f = roots[stem] / row["path"]
            desc = row["description"]
            clips.append(ClipRef("bvh", str(f), f"{source}/{row['path']}", source,
                                 action=row["cmu_trial"] if row["cmu_trial"] != "unknown" else Path(row["path"]).stem,
                                 style="", subject=row["cmu_subject"], category=row["category"],
                                 fps=_manifest_fps(row["true_fps"], f), drop_first=int(row["frame0_tpose"] == "yes"),
                                 skeleton_map=skel, weight=weight, description=desc))
    return clips


def _manifest_fps(text: str, where) -> float:
    """'60', '120', 'unknown (probably 120)' -> 60.0, 120.0, 120.0 (the manifest's best statement)."""
    m = re.search(r"\d+(\.\d+)?", text)
    if not m:
        raise ValueError(f"manifest true_fps {text!r} for {where} has no number")
    return float(m.group(0))


def cmu_manifest() -> list[dict]:
    path = CMU_DIR / "manifest.tsv"
    if not path.is_file():
        raise SourceSpecError(f"CMU manifest {path} not found (../shared/data/mocap-cmu missing?)")
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def unpack_cmu(stem: str) -> Path:
    """Unpack one CMU archive (e.g. 'cmu_iclone_cc3') once into <cache>/mocap-cmu/<stem>-<key>/
    (keyed by the archive's size and mtime, so a changed archive unpacks afresh) and return that
    folder; the archive's own top folder is inside it."""
    archive = CMU_DIR / f"{stem}.tar.xz"
    if not archive.is_file():
        raise SourceSpecError(f"CMU archive {archive} not found (../shared/data/mocap-cmu missing?)")
    st = archive.stat()
    sig = [archive.name, st.st_size, int(st.st_mtime)]
    key = hashlib.sha1(json.dumps(sig).encode()).hexdigest()[:12]
    out = paths.cache_dir() / "mocap-cmu" / f"{stem}-{key}"
    if (out / ".unpacked").is_file():
        return out
    import shutil
    tmp = out.with_name(out.name + f".partial{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    with tarfile.open(archive, "r:xz") as tar:
        tar.extractall(tmp, filter="data")
    (tmp / ".unpacked").write_text(json.dumps(sig))
    try:
        tmp.rename(out)
    except OSError:              # a concurrent unpack finished first
        shutil.rmtree(tmp)
    return out


# ------------------------------------------------------------------ user data

def _bvh_folder_clips(spec: SourceSpec) -> list[ClipRef]:
    opts = spec.opts
    folder = Path(spec.path).expanduser()
    if not folder.is_dir():
        raise SourceSpecError(f"data source spec {spec}: folder {folder} not found")
    files = sorted(folder.rglob("*.bvh"))
    if not files:
        raise SourceSpecError(f"data source spec {spec}: no .bvh files under {folder}")
    source = opts.get("name", f"bvh-{folder.resolve().name}")
    scale = _unit_scale(opts["units"], str(spec)) if "units" in opts else None
    fps = float(opts["fps"]) if "fps" in opts else None
    return [ClipRef("bvh", str(f), f"{source}/{f.relative_to(folder).as_posix()}", source,
                    action=f.stem, fps=fps, drop_first=int(opts.get("drop", 0)),
                    skeleton_map=opts.get("map"), unit_scale=scale,
                    position_channels=opts.get("position_channels"), weight=float(opts.get("weight", 1.0)))
            for f in files]


def _h36m_clips(spec: SourceSpec) -> list[ClipRef]:
    from diffpose_ros.data.h36m import FPS, TRAIN_SUBJECTS, load_positions_3d
    opts = spec.opts
    path = Path(spec.path).expanduser()
    if not path.is_file():
        raise SourceSpecError(f"data source spec {spec}: file {path} not found")
    try:
        pos3d = load_positions_3d(path)
    except (ValueError, OSError) as e:
        raise SourceSpecError(f"data source spec {spec}: {e}") from None
    subjects = opts["subjects"].split(",") if "subjects" in opts else list(TRAIN_SUBJECTS)
    missing = [s for s in subjects if s not in pos3d]
    if missing:
        raise SourceSpecError(f"data source spec {spec}: subjects {missing} not in {path} (has {sorted(pos3d)})")
    weight = float(opts.get("weight", 1.0))
    return [ClipRef("h36m", str(path), f"h36m/{s}/{a}", "h36m", action=a.split(" ")[0], subject=s,
                    category=a.split(" ")[0], fps=float(FPS), weight=weight, item=f"{s}/{a}")
            for s in subjects for a in sorted(pos3d[s])]
