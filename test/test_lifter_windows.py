"""The temporal lifter builds its windows on the stamps (windows.py): at the training rate for a
track at or below it, the last frames for a faster one."""
import numpy as np
import pytest

from diffpose_ros.lifter.windows import MAX_GAP_S, TrackWindows

T, FPS = 5, 10.0


def frame(value):
    return np.full((17, 3), value, np.float32)


def ring_buffer(values):
    """The windows of "the last T calls", replicate-padded at the track start."""
    out = []
    for i in range(len(values)):
        past = values[max(0, i - T + 1): i + 1]
        out.append([past[0]] * (T - len(past)) + past)
    return np.array(out)


def test_without_stamps_each_call_is_the_next_frame_at_the_training_rate():
    w = TrackWindows(T, FPS)
    values = [float(v) for v in range(9)]
    got = np.array([w(frame(v)[None], [3])[0, :, 0, 0] for v in values])
    assert np.array_equal(got, ring_buffer(values))


@pytest.mark.parametrize("camera_hz", [10.0, 20.0, 30.0, 60.0])
def test_a_camera_at_or_above_the_training_rate_gets_its_last_frames(camera_hz):
    w = TrackWindows(T, FPS)
    values = [float(v) for v in range(20)]
    got = np.array([w(frame(v)[None], [1], stamp=100.0 + i / camera_hz)[0, :, 0, 0] for i, v in enumerate(values)])
    assert np.array_equal(got, ring_buffer(values))


def linear(t):   # a signal linear in time: interpolating it is exact
    return 2.0 + 0.5 * t


@pytest.mark.parametrize("camera_hz, dropped_every", [(5.0, 0), (4.0, 3), (10.0, 4)])
def test_tracks_at_or_below_the_training_rate_are_interpolated_at_it(camera_hz, dropped_every):
    """A 5 Hz track gets windows at the training rate (frames in between interpolated), and so do
    the dropped frames of a 10 Hz one. Before the track's first frame the window repeats it."""
    stamps = 7.0 + np.arange(40) / camera_hz
    if dropped_every:
        stamps = stamps[np.arange(len(stamps)) % dropped_every != dropped_every - 1]
    w = TrackWindows(T, FPS)
    for t in stamps:
        got = w(frame(linear(t))[None], [4], stamp=t)[0, :, 0, 0]
        times = t - np.arange(T - 1, -1, -1) / FPS
        np.testing.assert_allclose(got, linear(np.maximum(times, stamps[0])), rtol=0, atol=1e-5)


def test_a_faster_track_closes_up_its_dropped_frames():
    """Above the training rate a track keeps its last T frames, drops closed up (measured better
    than filling them in, windows.py)."""
    keep = [i for i in range(30) if i % 4 != 3]            # 20 Hz, every 4th frame dropped
    w = TrackWindows(T, FPS)
    got = np.array([w(frame(i)[None], [4], stamp=3.0 + i / 20.0)[0, :, 0, 0] for i in keep])
    assert np.array_equal(got, ring_buffer([float(i) for i in keep]))


def test_a_jittery_stamp_is_taken_as_its_frame():
    """A stored frame within the tolerance of a sample time is that sample (no blend)."""
    w = TrackWindows(T, FPS)
    for i in range(T):
        w(frame(i)[None], [1], stamp=i / FPS + (2e-5 if i % 2 else 0.0))
    assert np.array_equal(w(frame(T)[None], [1], stamp=T / FPS)[0, :, 0, 0], np.arange(1, T + 1))


def test_time_going_back_or_a_long_gap_starts_the_window_again_and_a_repeated_stamp_replaces():
    w = TrackWindows(T, FPS)
    for i in range(6):
        w(frame(i)[None], [2], stamp=10.0 + i / FPS)
    assert np.all(w(frame(50)[None], [2], stamp=9.0)[0, :, 0, 0] == 50)        # back in time
    assert np.all(w(frame(60)[None], [2], stamp=9.0 + MAX_GAP_S + 0.01)[0, :, 0, 0] == 60)  # gap
    w(frame(61)[None], [2], stamp=9.1 + MAX_GAP_S)
    again = w(frame(62)[None], [2], stamp=9.1 + MAX_GAP_S)[0, :, 0, 0]        # the same image again
    assert again[-1] == 62 and 61 not in again and again[0] == 60


def test_tracks_are_independent_and_forgotten():
    w = TrackWindows(T, FPS, forget_after=3)
    w(np.stack([frame(1), frame(2)]), [1, 2], stamp=0.0)
    out = w(np.stack([frame(3)]), [2], stamp=0.1)
    assert np.array_equal(out[0, :, 0, 0], [2, 2, 2, 2, 3])
    for i in range(3):
        w(frame(9)[None], [5], stamp=0.2 + 0.1 * i)
    assert 1 not in w and 5 in w


def test_the_lifter_refuses_a_stamp_that_is_not_a_time():
    from diffpose_ros.lifter.lifter import Lifter
    from diffpose_ros.paths import WEIGHTS_DIR
    lifter = Lifter(WEIGHTS_DIR / "temporal", n_hyp=2)
    assert lifter._bundle.window_fps == 10.0
    K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
    with pytest.raises(ValueError, match="stamp"):
        lifter.lift(np.full((1, 17, 2), 300.0), np.ones((1, 17)), K, track_ids=[1], stamp=float("nan"))
