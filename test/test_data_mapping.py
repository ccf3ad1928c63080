"""Skeleton maps: BVH naming conventions -> 17 H36M joints."""
import numpy as np
import pytest

from diffpose_ros import paths
from diffpose_ros.data.bvh import forward_kinematics, load_bvh, parse_bvh
from diffpose_ros.data.mapping import detect_map, load_map, map_weights, to_h36m
from diffpose_ros.skeleton import H36M_JOINTS

REAL_CLIPS = sorted(paths.MOCAP_DIR.rglob("*.bvh"))
J = {n: i for i, n in enumerate(H36M_JOINTS)}


def build_bvh(tree, root_pos=(0, 95, 0)):
    """BVH text (cm, one frame, rest pose) from nested (name, offset, children); children None -> End Site."""
    out, ncols = [], [0]

    def emit(node, depth, root=False):
        name, off, kids = node
        pad = "  " * depth
        out.append(f"{pad}{'ROOT' if root else 'JOINT'} {name}")
        out.append(pad + "{")
        out.append(f"{pad}  OFFSET {off[0]} {off[1]} {off[2]}")
        if root:
            out.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation")
            ncols[0] += 6
        else:
            out.append(f"{pad}  CHANNELS 3 Zrotation Yrotation Xrotation")
            ncols[0] += 3
        if kids is None:
            out.extend([f"{pad}  End Site", pad + "  {", f"{pad}    OFFSET 0 10 0", pad + "  }"])
        for k in kids or ():
            emit(k, depth + 1)
        out.append(pad + "}")

    out.append("HIERARCHY")
    emit(tree, 0, root=True)
    frame = list(root_pos) + [0] * (ncols[0] - 3)
    out += ["MOTION", "Frames: 1", "Frame Time: 0.0083333", " ".join(map(str, frame))]
    return "\n".join(out)


def leg(side, hip, knee, ankle, toe, sign):
    return (hip, (sign * 10, -5, 0), [(knee, (0, -45, 0), [(ankle, (0, -42, 0), [(toe, (0, -5, 12), None)])])])


def arm(side, clav, shoulder, elbow, wrist, sign):
    inner = (shoulder, (sign * 15, 0, 0), [(elbow, (sign * 28, 0, 0), [(wrist, (sign * 25, 0, 0), None)])])
    return (clav, (sign * 3, 12, 0), [inner]) if clav else inner


CMU = ("Hips", (0, 0, 0), [
    ("LHipJoint", (0, 0, 0), [leg("L", "LeftUpLeg", "LeftLeg", "LeftFoot", "LeftToeBase", 1)]),
    ("RHipJoint", (0, 0, 0), [leg("R", "RightUpLeg", "RightLeg", "RightFoot", "RightToeBase", -1)]),
    ("LowerBack", (0, 5, 0), [("Spine", (0, 10, 0), [("Spine1", (0, 15, 0), [
        ("Neck", (0, 15, 0), [("Neck1", (0, 5, 0), [("Head", (0, 5, 0), None)])]),
        arm("L", "LeftShoulder", "LeftArm", "LeftForeArm", "LeftHand", 1),
        arm("R", "RightShoulder", "RightArm", "RightForeArm", "RightHand", -1),
    ])])]),
])

# the renamed CMU variant named in the issue (LeftHip, LeftKnee, LeftAnkle, lowerback, LeftShoulder, ...)
CMU_VARIANT = ("Hips", (0, 0, 0), [
    leg("L", "LeftHip", "LeftKnee", "LeftAnkle", "LeftToe", 1),
    leg("R", "RightHip", "RightKnee", "RightAnkle", "RightToe", -1),
    ("lowerback", (0, 15, 0), [("Neck", (0, 30, 0), [("Head", (0, 8, 0), None)]),
                               ("LeftShoulder", (18, 25, 0), [("LeftElbow", (28, 0, 0), [("LeftWrist", (25, 0, 0), None)])]),
                               ("RightShoulder", (-18, 25, 0), [("RightElbow", (-28, 0, 0), [("RightWrist", (-25, 0, 0), None)])])]),
])


def fk(path, unit_scale=0.01):
    b = parse_bvh(path)
    pos, rot = forward_kinematics(b, unit_scale, return_rotations=True)
    return pos, rot, b.names


def check_plausible(h36m):
    """Thigh 0.35-0.55 m, head above pelvis (Y-up world) and a left/right symmetric skeleton."""
    assert h36m.shape[1:] == (17, 3)
    trunk = h36m[:, J["thorax"]] - h36m[:, J["pelvis"]]
    upright = trunk[:, 1] > 0.9 * np.linalg.norm(trunk, axis=-1)      # trunk within ~25 deg of vertical
    assert upright.mean() > 0.5
    h36m = h36m[upright]
    thigh = np.linalg.norm(h36m[:, J["l_knee"]] - h36m[:, J["l_hip"]], axis=-1)
    assert np.all((thigh > 0.35) & (thigh < 0.55)), thigh
    assert np.all(h36m[:, J["head"], 1] > h36m[:, J["pelvis"], 1] + 0.4)
    assert np.all(h36m[:, J["thorax"], 1] > h36m[:, J["spine"], 1])
    assert np.all(h36m[:, J["head"], 1] > h36m[:, J["neck_nose"], 1])
    shin_l = np.linalg.norm(h36m[:, J["l_ankle"]] - h36m[:, J["l_knee"]], axis=-1)
    shin_r = np.linalg.norm(h36m[:, J["r_ankle"]] - h36m[:, J["r_knee"]], axis=-1)
    np.testing.assert_allclose(shin_l, shin_r, rtol=0.02)


@pytest.mark.parametrize("tree, name", [(CMU, "cmu_mb"), (CMU_VARIANT, "cmu_renamed")], ids=["cmu", "cmu_variant"])
def test_cmu_map(tmp_path, tree, name):
    f = tmp_path / "cmu.bvh"
    f.write_text(build_bvh(tree))
    pos, rot, names = fk(f)
    assert detect_map(names) == name
    h = to_h36m(pos, names, load_map(name), rot)
    check_plausible(h)
    # pelvis is the hip centre, thorax the shoulder centre (as the live 2D path defines them);
    # the shoulders lie on the line through the arm roots (not the clavicles)
    np.testing.assert_allclose(h[0, J["pelvis"]], (h[0, J["l_hip"]] + h[0, J["r_hip"]]) / 2)
    np.testing.assert_allclose(h[0, J["thorax"]], (h[0, J["l_shoulder"]] + h[0, J["r_shoulder"]]) / 2)
    sh = [names.index(n) for n in (("LeftArm", "RightArm") if "LeftArm" in names else ("LeftShoulder", "RightShoulder"))]
    axis = pos[0, sh[0]] - pos[0, sh[1]]
    off = h[0, J["l_shoulder"]] - pos[0, sh[0]]
    assert np.linalg.norm(np.cross(off, axis)) < 1e-9 * max(1.0, np.linalg.norm(axis))
    assert h[0, J["l_shoulder"], 0] > 0 > h[0, J["r_shoulder"], 0]


@pytest.mark.skipif(not REAL_CLIPS, reason="shared mocap data not found")
def test_bandai_namco_map_real_file():
    clip = next(c for c in REAL_CLIPS if "_walk_" in c.name)
    pos, rot, names = fk(clip)
    assert detect_map(names) == "bandai_namco"
    with pytest.raises(ValueError, match="rotations"):
        to_h36m(pos, names, "bandai_namco")
    h = to_h36m(pos, names, "bandai_namco", rot)
    check_plausible(h)
    height = h[:, J["head"], 1] - pos[..., 1].min()
    # the head joint sits near the top of the head (~0.96 of the 1.5 m stature of this skeleton)
    assert np.all((height > 1.35) & (height < 1.9)), height.min()


@pytest.mark.skipif(not REAL_CLIPS, reason="shared mocap data not found")
def test_real_data_is_right_handed_y_up():
    """The person's left (up x forward in a right-handed Y-up world) is where the _L joints are;
    a mirrored world would silently swap left and right in every image."""
    clip = next(c for c in REAL_CLIPS if "_walk_" in c.name)
    pos, names, _, _ = load_bvh(clip)
    i = {n: k for k, n in enumerate(names)}
    forward = pos[:, i["Toes_L"]] - pos[:, i["Foot_L"]] + pos[:, i["Toes_R"]] - pos[:, i["Foot_R"]]
    forward[:, 1] = 0
    left = np.cross([0.0, 1.0, 0.0], forward)
    across = pos[:, i["UpperLeg_L"]] - pos[:, i["UpperLeg_R"]]
    assert np.mean(np.sum(left * across, axis=-1) > 0) > 0.95


def test_unknown_convention_lists_names():
    names = ["root", "torso", "left_thigh", "left_shin"]
    with pytest.raises(ValueError) as e:
        detect_map(names)
    for n in names:
        assert n in str(e.value)


def test_weights_sum_to_one_and_bad_map(tmp_path):
    W = map_weights([n for n in ["UpperLeg_L", "UpperLeg_R", "LowerLeg_L", "LowerLeg_R", "Foot_L", "Foot_R",
                                 "Spine", "Chest", "Neck", "Head", "UpperArm_L", "LowerArm_L", "Hand_L",
                                 "UpperArm_R", "LowerArm_R", "Hand_R"]], load_map("bandai_namco"))
    np.testing.assert_allclose(W.sum(1), 1.0)
    bad = tmp_path / "bad.json"
    bad.write_text('{"joints": {"pelvis": {"A": 0.5, "B": 0.2}}}')
    with pytest.raises(ValueError, match="missing"):
        load_map(bad)
    with pytest.raises(ValueError, match="unknown skeleton map"):
        load_map("no_such_map")
