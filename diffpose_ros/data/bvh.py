"""BVH motion-capture reader and forward kinematics (numpy, vectorised over frames).

Any hierarchy is accepted: each joint's CHANNELS line gives its own channel order, and the
Euler rotation order is the order in which that joint's rotation channels are listed (the BVH
convention: "Zrotation Xrotation Yrotation" means R = Rz @ Rx @ Ry acting on column vectors).
Translation of a joint relative to its parent is its OFFSET, unless the joint has position
channels: then the channel values are the translation (MotionBuilder convention, used by the
shared Bandai Namco files where every joint carries 6 channels whose position values equal the
OFFSET). `position_channels="add"` selects the other convention (OFFSET + channel values).

End Sites become extra joints named "<parent>_end" so that e.g. a head top is addressable.
Positions are returned in metres: `units="cm"` (the shared data) or `unit_scale` explicitly.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# "cmu": the CMU ASF length unit, (1/0.45) inch, kept by the cgspeed MotionBuilder-friendly BVHs
UNIT_SCALES = {"m": 1.0, "cm": 0.01, "mm": 0.001, "in": 0.0254, "cmu": 0.0254 / 0.45}
_AXES = {"X": 0, "Y": 1, "Z": 2}


class BVHError(ValueError):
    """Malformed BVH file; the message names the file, the line number and the reason."""

    def __init__(self, source, line, reason):
        self.source, self.line, self.reason = str(source), line, reason
        where = f"{source}:{line}" if line is not None else str(source)
        super().__init__(f"{where}: {reason}")


@dataclass
class BVH:
    """Parsed BVH file. Joints are in file order, which is topological (parents first)."""

    names: list[str]
    parents: list[int]                   # -1 for the root
    offsets: np.ndarray                  # (J, 3) in file units
    channels: list[list[str]]            # per joint, e.g. ["Xposition", ..., "Yrotation"]; [] for End Sites
    channel_start: list[int]             # column of each joint's first channel in `motion`
    frame_time: float
    motion: np.ndarray                   # (F, C) raw channel values (file units, degrees)
    source: str = "<string>"
    is_end_site: list[bool] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return self.motion.shape[0]


def _tokenize(text):
    """Yield (line_number, token) for the HIERARCHY part, stopping at MOTION."""
    for lineno, line in enumerate(text.splitlines(), start=1):
        for tok in line.split():
            yield lineno, tok


def parse_bvh(source, text: str | None = None) -> BVH:
    """Parse a BVH file (path) or, if `text` is given, BVH text labelled `source` in errors."""
    if text is None:
        try:
            text = Path(source).read_text()
        except OSError as e:
            raise BVHError(source, None, f"cannot read file: {e}") from e
    lines = text.splitlines()
    motion_line = next((i for i, l in enumerate(lines) if l.strip().upper().startswith("MOTION")), None)
    if motion_line is None:
        raise BVHError(source, len(lines), "MOTION section missing")
    header = "\n".join(lines[:motion_line])

    names, parents, offsets, channels, chan_start, end_flags = [], [], [], [], [], []
    stack = []          # indices of open joints ('{' seen)
    pending = None      # joint declared but its '{' not yet seen
    ncols = 0
    toks = list(_tokenize(header))
    i = 0

    def need(k, what):
        if i + k > len(toks):
            last = toks[-1][0] if toks else 1
            raise BVHError(source, last, f"file truncated while reading {what}")

    if not toks or toks[0][1].upper() != "HIERARCHY":
        raise BVHError(source, toks[0][0] if toks else 1, "expected HIERARCHY")
    i = 1
    while i < len(toks):
        lineno, tok = toks[i]
        key = tok.upper()
        if pending is not None and tok != "{":
            raise BVHError(source, lineno, f"missing '{{' after joint {names[pending]}")
        if key in ("ROOT", "JOINT", "END"):
            if key == "ROOT" and (names or stack):
                raise BVHError(source, lineno, "only one ROOT hierarchy is supported")
            if key != "ROOT" and not stack:
                raise BVHError(source, lineno, f"{tok} outside of any joint block (missing '{{'?)")
            need(2, f"{tok} name")
            if key == "END":
                if toks[i + 1][1].upper() != "SITE":
                    raise BVHError(source, lineno, f"expected 'End Site', got 'End {toks[i + 1][1]}'")
                name = f"{names[stack[-1]]}_end"
            else:
                name = toks[i + 1][1]
                if name in names:
                    raise BVHError(source, lineno, f"duplicate joint name {name!r}")
            names.append(name)
            parents.append(stack[-1] if stack else -1)
            offsets.append(None)
            channels.append([])
            chan_start.append(ncols)
            end_flags.append(key == "END")
            pending = len(names) - 1
            i += 2
        elif tok == "{":
            if pending is None:
                raise BVHError(source, lineno, "unexpected '{'")
            stack.append(pending)
            pending = None
            i += 1
        elif tok == "}":
            if not stack:
                raise BVHError(source, lineno, "unbalanced '}'")
            j = stack.pop()
            if offsets[j] is None:
                raise BVHError(source, lineno, f"joint {names[j]} has no OFFSET")
            i += 1
        elif key == "OFFSET":
            if not stack:
                raise BVHError(source, lineno, "OFFSET outside of a joint block")
            need(4, "OFFSET")
            try:
                offsets[stack[-1]] = [float(t) for _, t in toks[i + 1:i + 4]]
            except ValueError:
                raise BVHError(source, lineno, "OFFSET needs 3 numbers") from None
            i += 4
        elif key == "CHANNELS":
            if not stack:
                raise BVHError(source, lineno, "CHANNELS outside of a joint block")
            j = stack[-1]
            if end_flags[j]:
                raise BVHError(source, lineno, "End Site cannot have CHANNELS")
            need(2, "CHANNELS")
            try:
                n = int(toks[i + 1][1])
            except ValueError:
                raise BVHError(source, lineno, f"bad channel count {toks[i + 1][1]!r}") from None
            names_ch = list(itertools.takewhile(lambda lt: lt[0] == lineno, toks[i + 2:]))
            names_ch = [t for _, t in names_ch]
            if n < 0 or len(names_ch) != n:
                raise BVHError(source, lineno, f"CHANNELS says {n} but lists {len(names_ch)} channels")
            for c in names_ch:
                if len(c) != 9 or c[0].upper() not in _AXES or c[1:].lower() not in ("position", "rotation"):
                    raise BVHError(source, lineno, f"unknown channel {c!r}")
            channels[j] = names_ch
            chan_start[j] = ncols
            ncols += n
            i += 2 + len(names_ch)
        else:
            raise BVHError(source, lineno, f"unexpected token {tok!r}")
    if pending is not None or stack:
        raise BVHError(source, motion_line + 1, "hierarchy not closed before MOTION (missing '}')")
    if not names:
        raise BVHError(source, motion_line + 1, "no joints in HIERARCHY")
    # channel columns must follow file order of CHANNELS lines (joints without channels take 0)
    order = [j for j in range(len(names)) if channels[j]]
    if [chan_start[j] for j in order] != sorted(chan_start[j] for j in order):
        raise BVHError(source, None, "internal: channel columns out of order")

    # --- MOTION ---
    def header_value(k, label):
        if motion_line + k >= len(lines):
            raise BVHError(source, motion_line + k + 1, f"file truncated: missing '{label}' line")
        line = lines[motion_line + k]
        if not line.strip().lower().startswith(label.lower()):
            raise BVHError(source, motion_line + k + 1, f"expected '{label}', got {line.strip()[:40]!r}")
        try:
            return line.split(":", 1)[1].strip()
        except IndexError:
            raise BVHError(source, motion_line + k + 1, f"'{label}' line has no value") from None

    try:
        nframes = int(header_value(1, "Frames"))
    except ValueError:
        raise BVHError(source, motion_line + 2, "Frames value is not an integer") from None
    try:
        frame_time = float(header_value(2, "Frame Time"))
    except ValueError:
        raise BVHError(source, motion_line + 3, "Frame Time value is not a number") from None

    first = motion_line + 3
    rows = [l.split() for l in lines[first:]]
    while rows and not rows[-1]:      # trailing blank lines are harmless
        rows.pop()
    for k, r in enumerate(rows):
        if len(r) != ncols:
            raise BVHError(source, first + k + 1,
                           f"frame {k} has {len(r)} values, expected {ncols} (sum of CHANNELS)")
    if len(rows) != nframes:
        raise BVHError(source, first + len(rows),
                       f"Frames says {nframes} but the file has {len(rows)} frame lines")
    try:
        flat = np.array(list(itertools.chain.from_iterable(rows)), dtype=np.float64)
    except ValueError:
        for k, r in enumerate(rows):
            for t in r:
                try:
                    float(t)
                except ValueError:
                    raise BVHError(source, first + k + 1, f"non-numeric value {t!r} in frame {k}") from None
        raise
    if not np.all(np.isfinite(flat)):
        bad = int(np.argmax(~np.isfinite(flat))) // max(ncols, 1)
        raise BVHError(source, first + bad + 1, f"non-finite value in frame {bad}")
    motion = flat.reshape(nframes, ncols)
    return BVH(names, parents, np.array(offsets, dtype=np.float64), channels, chan_start,
               frame_time, motion, str(source), end_flags)


def _axis_rotations(axis, angles_rad):
    """(F, 3, 3) rotation matrices about a principal axis."""
    c, s = np.cos(angles_rad), np.sin(angles_rad)
    one, zero = np.ones_like(c), np.zeros_like(c)
    if axis == 0:
        m = [one, zero, zero, zero, c, -s, zero, s, c]
    elif axis == 1:
        m = [c, zero, s, zero, one, zero, -s, zero, c]
    else:
        m = [c, -s, zero, s, c, zero, zero, zero, one]
    return np.stack(m, axis=-1).reshape(*c.shape, 3, 3)


def with_ancestors(bvh: BVH, joints) -> list[int]:
    """Sorted indices of the given joints and all their ancestors (what FK needs to place them)."""
    keep = set()
    for j in joints:
        while j >= 0 and j not in keep:
            keep.add(j)
            j = bvh.parents[j]
    return sorted(keep)


def local_transforms(bvh: BVH, position_channels: str = "replace", joints=None):
    """Per-joint local rotation (F, J, 3, 3) and translation (F, J, 3), file units.
    `joints`: only these joint indices are filled (the others stay identity / OFFSET)."""
    if position_channels not in ("replace", "add"):
        raise ValueError(f"position_channels must be 'replace' or 'add', got {position_channels!r}")
    F, J = bvh.num_frames, len(bvh.names)
    rot = np.broadcast_to(np.eye(3), (F, J, 3, 3)).copy()
    trans = np.broadcast_to(bvh.offsets, (F, J, 3)).copy()
    todo = range(J) if joints is None else joints
    for j in todo:
        chans = bvh.channels[j]
        pos_seen = False
        for k, ch in enumerate(chans):
            col = bvh.motion[:, bvh.channel_start[j] + k]
            axis = _AXES[ch[0].upper()]
            if ch[1:].lower() == "position":
                if not pos_seen and position_channels == "replace":
                    trans[:, j] = 0.0
                pos_seen = True
                trans[:, j, axis] += col
            else:  # rotations compose in the listed order: R = R1 @ R2 @ R3
                rot[:, j] = rot[:, j] @ _axis_rotations(axis, np.deg2rad(col))
    return rot, trans


def forward_kinematics(bvh: BVH, unit_scale: float = 1.0, position_channels: str = "replace", joints=None,
                       return_rotations: bool = False):
    """World positions (F, J, 3) of every joint (End Sites included), times unit_scale; with
    return_rotations also the world rotations (F, J, 3, 3) (an End Site: its parent's).

    `joints` (indices): compute only these and their ancestors (a 142-joint face-and-finger rig
    needs ~25 of them for a body skeleton); the other joints are NaN.
    """
    todo = range(len(bvh.names)) if joints is None else with_ancestors(bvh, joints)
    rot, trans = local_transforms(bvh, position_channels, todo)
    F, J = bvh.num_frames, len(bvh.names)
    g_rot = np.empty_like(rot)
    g_pos = np.full((F, J, 3), np.nan)
    for j in todo:                        # file order is topological
        p = bvh.parents[j]
        if p < 0:
            g_rot[:, j] = rot[:, j]
            g_pos[:, j] = trans[:, j]
        else:
            g_rot[:, j] = g_rot[:, p] @ rot[:, j]
            g_pos[:, j] = g_pos[:, p] + np.einsum("fij,fj->fi", g_rot[:, p], trans[:, j])
    if return_rotations:
        return g_pos * unit_scale, g_rot
    return g_pos * unit_scale


def load_bvh(path, units: str = "cm", unit_scale: float | None = None, position_channels: str = "replace"):
    """Read a BVH file and run FK. Returns (positions (F,J,3) metres, joint names, parents, frame_time)."""
    if unit_scale is None:
        if units not in UNIT_SCALES:
            raise ValueError(f"unknown units {units!r}; use one of {sorted(UNIT_SCALES)} or unit_scale")
        unit_scale = UNIT_SCALES[units]
    bvh = parse_bvh(path)
    pos = forward_kinematics(bvh, unit_scale, position_channels)
    return pos, list(bvh.names), list(bvh.parents), bvh.frame_time
