"""Changing N and the step count at run time, without ROS: one graph serves every N, the
calibration of (steps, N) is applied outside it, and a new step count is built in the
background and switched to between two frames (SamplerManager, PosePipeline.apply_sampling)."""
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from diffpose_ros.backends import SamplerManager, make_backend
from diffpose_ros.backends.child import live_children
from diffpose_ros.lifter.lifter import Lifter
from diffpose_ros.lifter.model_io import init_bundle
from diffpose_ros.lifter.sampler import build_sampler
from diffpose_ros.paths import WEIGHTS_DIR, lifter_bundle
from diffpose_ros.pipeline import PosePipeline, TimedRunner

K = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])


def people(p=2, seed=0):
    rng = np.random.default_rng(seed)
    base = np.array([[320, 200]]) + rng.normal(0, 40, size=(17, 2))
    kp = np.stack([base + 30 * i for i in range(p)])
    return kp, rng.uniform(0.5, 1.0, size=(p, 17))


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_one_backend_serves_every_n_with_the_calibration_of_each():
    """The shipped frame model is calibrated on a grid of (steps, N); a setting off the grid uses
    the nearest calibrated one. One runner (one graph) serves every N; the Lifter applies the
    calibration of the current setting to the runner's uncalibrated covariance."""
    from diffpose_ros.lifter.calibration import CovarianceModel, select_entry
    weights = WEIGHTS_DIR / "frame"
    backend = make_backend("torch-cpu", weights, steps=5, threads=1)
    runner = TimedRunner(backend)
    lifter = Lifter(weights, steps=5, n_hyp=5, runner=runner, seed=1)
    kp, conf = people()
    for n, source in ((5, "s5_n5"), (20, "s5_n20"), (1, "s5_n2"), (7, "s5_n5")):
        lifter.set_sampling(5, n)
        assert lifter.runner is runner and lifter.calibration_source == source
        res = lifter.lift(kp, conf, K, track_ids=[1, 2])
        assert res.hypotheses.shape == (2, n, 17, 3)
        assert np.all(np.linalg.eigvalsh(res.covariance) > 0)
    a5 = CovarianceModel(select_entry(lifter.calibration, 5, 5)[0]).a
    a20 = CovarianceModel(select_entry(lifter.calibration, 5, 20)[0]).a
    assert not np.allclose(a5, a20)
    with pytest.raises(ValueError, match="needs a runner"):
        lifter.set_sampling(2, 5)  # a new step count needs its runner (the manager's job)


def test_the_default_torch_runner_follows_steps_and_n(tmp_path):
    init_bundle(tmp_path, seed=3)
    lifter = Lifter(tmp_path, steps=2, n_hyp=3)
    kp, conf = people(1)
    assert lifter.lift(kp, conf, K).hypotheses.shape == (1, 3, 17, 3)
    lifter.set_sampling(1, 6)
    assert lifter.runner.steps == 1 and lifter.lift(kp, conf, K).hypotheses.shape == (1, 6, 17, 3)


@pytest.fixture
def manager(tmp_path):
    folder = tmp_path / "bundle"
    init_bundle(folder, seed=0)
    mgr = SamplerManager("onnxruntime-cpu", folder, max_people=3, threads=1,
                         cache_dir=tmp_path / "cache")
    yield mgr
    mgr.close()


def test_a_new_step_count_is_built_in_the_background_and_switched_between_frames(manager,
                                                                                 tmp_path):
    first = manager.load(1)
    lifter = Lifter(manager.weights_dir, steps=1, n_hyp=4, runner=TimedRunner(first))
    pipeline = PosePipeline(None, None, lifter, sampler_manager=manager)
    assert manager.status()["sampler_graph"].startswith("onnxruntime (cpu) steps=1: sampler_s1_")
    assert manager.status()["sampler_building"] == "none"

    pipeline.set_sampling(1, 9)          # N only: the next frame, no build
    pipeline.apply_sampling()
    assert (lifter.steps, lifter.n_hyp, lifter.runner.backend) == (1, 9, first)
    assert manager.status()["sampler_building"] == "none"

    pipeline.set_sampling(2, 9)          # a new step count: built while steps=1 serves
    wait_until(lambda: manager.status()["sampler_building"].startswith("steps=2"), 10,
               "the background build to start")
    pipeline.apply_sampling()
    assert (lifter.steps, lifter.runner.backend) == (1, first)   # not ready: the old one serves
    kp, conf = people(1)
    assert lifter.lift(kp, conf, K).hypotheses.shape == (1, 9, 17, 3)
    wait_until(lambda: manager.status()["sampler_building"] == "none", 120, "the build")
    pipeline.apply_sampling()
    assert lifter.steps == 2 and lifter.runner.steps == 2 and lifter.n_hyp == 9
    assert "steps=2: sampler_s2_" in manager.status()["sampler_graph"]
    second = lifter.runner.backend

    pipeline.set_sampling(1, 9)          # back to a recent one: kept in memory, immediate
    pipeline.apply_sampling()
    assert lifter.runner.backend is first and lifter.steps == 1
    assert manager.status()["sampler_building"] == "none"
    pipeline.set_sampling(2, 9)
    pipeline.apply_sampling()
    assert lifter.runner.backend is second
    assert sorted(p.name[:11] for p in (tmp_path / "cache" / "samplers").iterdir()) == \
        ["sampler_s1_", "sampler_s2_"]


def test_close_during_a_background_build_kills_it(manager, tmp_path):
    manager.load(1)
    manager.request(3)
    wait_until(lambda: live_children(), 30, "the export child")
    time.sleep(0.5)
    t0 = time.monotonic()
    assert manager.close(timeout=1.9)
    # kill + reap of a child with torch half loaded: ~1 s on the loaded 2-core CI machine
    assert time.monotonic() - t0 < 2.0 and live_children() == []
    assert [p.name for p in (tmp_path / "cache" / "samplers").iterdir()
            if not p.name.startswith("sampler_s1_")] == []


def test_a_failed_build_keeps_the_old_graph_serving(tmp_path):
    folder = tmp_path / "bundle"
    init_bundle(folder, seed=0)
    calls = []

    def make(name, weights_dir, steps, cancel=None, niceness=0, **kw):
        calls.append((steps, niceness))
        if steps == 4:
            raise RuntimeError("no graph for you")
        return make_backend("torch-cpu", weights_dir, steps, cancel=cancel, **kw)

    mgr = SamplerManager("torch-cpu", folder, make=make)
    try:
        mgr.load(1)
        mgr.request(4)
        wait_until(lambda: "sampler_build_error" in mgr.status(), 30, "the failure")
        assert "no graph for you" in mgr.status()["sampler_build_error"]
        assert mgr.take_ready() is None and mgr.serving.steps == 1
        assert calls == [(1, 0), (4, 5)]  # the background build runs at a lower CPU priority
        mgr.request(2)                    # a later request still works
        wait_until(lambda: mgr.take_ready() is not None, 30, "steps=2")
        assert mgr.serving.steps == 2 and "sampler_build_error" not in mgr.status()
    finally:
        assert mgr.close()


def test_a_newer_request_cancels_the_build_in_progress(tmp_path):
    folder = tmp_path / "bundle"
    init_bundle(folder, seed=0)
    started, cancelled = threading.Event(), []

    def make(name, weights_dir, steps, cancel=None, niceness=0, **kw):
        if steps == 3:
            started.set()
            while not cancel.is_set():
                time.sleep(0.01)
            cancelled.append(steps)
            from diffpose_ros.backends import Cancelled
            raise Cancelled("stopped")
        return make_backend("torch-cpu", weights_dir, steps, **kw)

    mgr = SamplerManager("torch-cpu", folder, make=make)
    try:
        mgr.load(1)
        mgr.request(3)
        assert started.wait(10)
        mgr.request(2)
        wait_until(lambda: mgr.take_ready() is not None, 30, "steps=2")
        assert cancelled == [3] and mgr.serving.steps == 2
    finally:
        assert mgr.close()


def test_build_sampler_graph_is_independent_of_n(tmp_path):
    """The torch module built for N=5 computes any N (the runner contract for every backend)."""
    init_bundle(tmp_path, seed=1)
    from diffpose_ros.backends.export import example_inputs
    import torch
    s5, s2 = build_sampler(tmp_path, 2, 5), build_sampler(tmp_path, 2, 2)
    args = [torch.from_numpy(a) for a in example_inputs(s5, 2, n_hyp=7)]
    with torch.no_grad():
        for a, b in zip(s5(*args), s2(*args)):
            assert torch.equal(a, b)


def test_diagnostics_say_whether_the_mirror_image_is_used():
    """The shipped bundles lift half their hypotheses from the mirror image, and /diagnostics
    (PosePipeline.sampling_status) says so; a bundle without the setting does not."""
    assert Lifter(WEIGHTS_DIR / "frame").mirror and Lifter(WEIGHTS_DIR / "temporal").mirror
    assert not Lifter(bundle=init_bundle(None, seed=0), runner=lambda *a: None).mirror
    pipe = PosePipeline.create(backend="torch", lifter_weights=WEIGHTS_DIR / "frame")
    assert pipe.sampling_status()["mirror_image"] == "on"


def test_bundled_lifters_by_name(tmp_path, monkeypatch):
    """lifter_weights / --weights: '' is the bundled frame model, 'frame' and 'temporal' the
    bundled ones, anything else a folder; a folder of that name where one runs wins over the
    name. /diagnostics says which model and folder lift."""
    monkeypatch.chdir(tmp_path)
    assert lifter_bundle("") == lifter_bundle(None) == lifter_bundle("frame") == WEIGHTS_DIR / "frame"
    assert lifter_bundle("temporal") == WEIGHTS_DIR / "temporal"
    assert lifter_bundle(str(tmp_path / "mine")) == tmp_path / "mine"
    (tmp_path / "temporal").mkdir()                 # one's own bundle of that name
    assert lifter_bundle("temporal") == Path("temporal")
    assert lifter_bundle("baseline") == Path("baseline")    # not a DiffPose bundle: a folder name
    pipe = PosePipeline.create(backend="torch", lifter_weights="")
    assert pipe.sampling_status()["lifter"] == f"frame ({WEIGHTS_DIR / 'frame'})"
    monkeypatch.chdir(tmp_path / "temporal")        # no temporal/ here: the bundled one
    lifter = Lifter("temporal")
    assert lifter.temporal and lifter.weights_dir == WEIGHTS_DIR / "temporal"
