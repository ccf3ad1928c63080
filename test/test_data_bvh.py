"""BVH parsing and forward kinematics."""
import numpy as np
import pytest

from diffpose_ros import paths
from diffpose_ros.data.bvh import BVHError, load_bvh, parse_bvh

REAL_CLIPS = sorted(paths.MOCAP_DIR.rglob("*.bvh"))
needs_data = pytest.mark.skipif(not REAL_CLIPS, reason="shared mocap data not found")


def two_joint_bvh(rot_channels, frames):
    """Root with 6 channels (position + rotations in the given order), child B with 3 ZXY rotations."""
    lines = [
        "HIERARCHY", "ROOT A", "{", "  OFFSET 0 0 0",
        f"  CHANNELS 6 Xposition Yposition Zposition {' '.join(c + 'rotation' for c in rot_channels)}",
        "  JOINT B", "  {", "    OFFSET {child}", "    CHANNELS 3 Zrotation Xrotation Yrotation",
        "    End Site", "    {", "      OFFSET 0 1 0", "    }", "  }", "}",
        "MOTION", f"Frames: {len(frames)}", "Frame Time: 0.0333333",
    ] + [" ".join(str(v) for v in f) for f in frames]
    return "\n".join(lines)


@pytest.mark.parametrize("order, angles, child, expect_child, expect_end", [
    # R = Rz(90) Rx(90): (0,0,2) -> (2,0,0); (0,1,0) -> (0,0,1)
    ("ZXY", (90, 90, 0), "0 0 2", (3, 2, 3), (3, 2, 4)),
    # R = Rx(90) Ry(90): (1,0,0) -> (0,1,0); (0,1,0) -> (0,0,1)
    ("XYZ", (90, 90, 0), "1 0 0", (1, 3, 3), (1, 3, 4)),
    # R = Ry(90) Rx(90): (1,0,0) -> (0,0,-1); (0,1,0) -> (1,0,0)
    ("YXZ", (90, 90, 0), "1 0 0", (1, 2, 2), (2, 2, 2)),
])
def test_two_joint_rotation_orders(tmp_path, order, angles, child, expect_child, expect_end):
    text = two_joint_bvh(order, [(1, 2, 3, *angles, 0, 0, 0)]).replace("{child}", child)
    f = tmp_path / "two.bvh"
    f.write_text(text)
    pos, names, parents, ft = load_bvh(f, unit_scale=1.0)
    assert names == ["A", "B", "B_end"] and parents == [-1, 0, 1]
    assert ft == pytest.approx(1 / 30, rel=1e-5)
    np.testing.assert_allclose(pos[0], [(1, 2, 3), expect_child, expect_end], atol=1e-9)


def test_child_rotation_and_units(tmp_path):
    # frame 0: no rotation; frame 1: child rotated 90 deg about Z: its End Site (0,1,0) -> (-1,0,0)
    text = two_joint_bvh("ZXY", [(1, 2, 3, 0, 0, 0, 0, 0, 0), (1, 2, 3, 0, 0, 0, 90, 0, 0)])
    f = tmp_path / "two.bvh"
    f.write_text(text.replace("{child}", "0 0 2"))
    pos, *_ = load_bvh(f)   # default units cm -> metres
    np.testing.assert_allclose(pos[0], np.array([(1, 2, 3), (1, 2, 5), (1, 3, 5)]) * 0.01, atol=1e-12)
    np.testing.assert_allclose(pos[1], np.array([(1, 2, 3), (1, 2, 5), (0, 2, 5)]) * 0.01, atol=1e-12)


GOOD = two_joint_bvh("ZXY", [(0, 0, 0, 0, 0, 0, 0, 0, 0)] * 2).replace("{child}", "0 0 1")


@pytest.mark.parametrize("mutate, line, reason", [
    (lambda t: t.replace("  {\n    OFFSET 0 0 1", "    OFFSET 0 0 1"), 7, "missing '{' after joint B"),           # missing brace
    (lambda t: t.replace("CHANNELS 3 Z", "CHANNELS 4 Z"), 9, "CHANNELS says 4"),
    (lambda t: t.replace("CHANNELS 3 Z", "CHANNELS 2 Z"), 9, "CHANNELS says 2 but lists 3"),
    (lambda t: t.replace("CHANNELS 3 Z", "CHANNELS x Z"), 9, "bad channel count"),
    (lambda t: t + "\n0 0 0 0 0 0 0 0", 21, "frame 2 has 8 values"),
    (lambda t: t.rsplit("\n", 1)[0] + "\n0 0 0 0 abc 0 0 0 0", 20, "non-numeric value 'abc'"),
    (lambda t: t.split("MOTION")[0], None, "MOTION section missing"),
    (lambda t: t.replace("Frames: 2", "Frames: 3"), 20, "Frames says 3"),
    (lambda t: t.replace("Frames: 2", "Frames: two"), 17, "not an integer"),
    (lambda t: t.replace("    }\n  }\n}", "    }\n  }"), 15, "missing '}'"),
    (lambda t: t.replace("OFFSET 0 0 1", "OFFSET 0 zero 1"), 8, "OFFSET needs 3 numbers"),
])
def test_malformed_bvh(tmp_path, mutate, line, reason):
    f = tmp_path / "bad.bvh"
    f.write_text(mutate(GOOD))
    with pytest.raises(BVHError) as e:
        parse_bvh(f)
    msg = str(e.value)
    assert "bad.bvh" in msg and reason in msg, msg
    if line is not None:
        assert e.value.line == line and f"bad.bvh:{line}:" in msg, msg


def test_good_template_parses():
    b = parse_bvh("<good>", GOOD)
    assert b.motion.shape == (2, 9)


@needs_data
def test_real_clip_bone_lengths_constant():
    pos, names, parents, _ = load_bvh(REAL_CLIPS[0])
    assert pos.shape[1] == len(names) and pos.shape[0] > 10
    for j, p in enumerate(parents):
        if p >= 0 and names[j] != "Hips":        # Hips is translated by mocap root channels
            length = np.linalg.norm(pos[:, j] - pos[:, p], axis=-1)
            assert np.ptp(length) < 1e-6, (names[j], np.ptp(length))
    # Y-up, metres: the head is about 1.3-1.8 m above the lowest joint
    y = pos[..., 1]
    head = y[:, names.index("Head")] - y.min()
    assert 1.2 < head.mean() < 1.8
