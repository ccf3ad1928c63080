"""Graph builds in a child process: the cache location, a stop at any moment (the child is
killed and reaped, no half-written file), errors from the child, leftovers of dead processes,
and a child never outliving its parent."""
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from diffpose_ros import paths
from diffpose_ros.backends import Cancelled
from diffpose_ros.backends.child import kill_children, live_children, sweep_partials
from diffpose_ros.backends.export import ExportError, load_or_export, read_metadata
from diffpose_ros.lifter.model_io import init_bundle
from diffpose_ros.lifter.sampler import build_sampler

LOG = "diffpose_ros.backends"


def process_gone(pid: int) -> bool:
    """No such process, or only its zombie entry (reaped by nobody yet: not running)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True
    return state in ("Z", "X")


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def child_pid(text: str) -> int:
    return int(re.search(r"running in child process (\d+)", text).group(1))


@pytest.fixture
def bundle(tmp_path):
    folder = tmp_path / "bundle"
    init_bundle(folder, seed=0)
    return folder


def test_cache_dir_honours_xdg_and_the_override(monkeypatch, tmp_path):
    monkeypatch.delenv("DIFFPOSE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.cache_dir() == tmp_path / "xdg" / "diffpose_ros"
    assert paths.cache_dir().is_dir()
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # invalid per the XDG spec: ignored
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert paths.cache_dir() == tmp_path / "home" / ".cache" / "diffpose_ros"
    monkeypatch.setenv("DIFFPOSE_CACHE", str(tmp_path / "mine"))
    assert paths.cache_dir() == tmp_path / "mine"


def _export_in_thread(bundle, cache, cancel, steps=2):
    result = {}

    def run():
        try:
            result["path"] = load_or_export(bundle, steps, max_people=3, build=build_sampler,
                                            cache_dir=cache, cancel=cancel)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            result["error"] = exc
        result["at"] = time.monotonic()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


@pytest.mark.parametrize("how", ["cancel", "kill_children"])
def test_a_stop_during_an_export_kills_the_child_and_leaves_no_file(bundle, tmp_path, caplog,
                                                                    how):
    caplog.set_level(logging.INFO, logger=LOG)
    cache, cancel = tmp_path / "cache", threading.Event()
    thread, result = _export_in_thread(bundle, cache, cancel)
    wait_until(lambda: live_children(), 60, "the export child")
    pid = live_children()[0]
    time.sleep(1.0)  # inside the child's torch import / export now
    t0 = time.monotonic()
    cancel.set() if how == "cancel" else kill_children(wait=1.0)
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert isinstance(result.get("error"), Cancelled), result
    assert result["at"] - t0 < 1.0, f"stopped {result['at'] - t0:.2f} s after the request"
    assert live_children() == [] and process_gone(pid)
    assert child_pid(caplog.text) == pid
    assert [p for p in (cache / "samplers").iterdir()] == []  # no partial, no final file
    # the cache is intact: the next export completes, and the one after reuses it
    path = load_or_export(bundle, 2, max_people=3, build=build_sampler, cache_dir=cache)
    assert read_metadata(path)["steps"] == "2"
    caplog.clear()
    assert load_or_export(bundle, 2, max_people=3, build=build_sampler, cache_dir=cache) == path
    assert "reusing" in caplog.text
    assert sorted(p.name for p in (cache / "samplers").iterdir()) == [path.name]


def test_an_already_cancelled_export_starts_nothing(bundle, tmp_path):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        load_or_export(bundle, 2, build=build_sampler, cache_dir=tmp_path / "c", cancel=cancel)
    assert live_children() == [] and list((tmp_path / "c" / "samplers").iterdir()) == []


def test_a_failing_export_reports_the_childs_error(bundle, tmp_path):
    (bundle / "gmm.npz").unlink()  # the sampler cannot be built without its mixture
    with pytest.raises(ExportError, match="failed in child process .*exit 1") as err:
        load_or_export(bundle, 2, build=build_sampler, cache_dir=tmp_path / "c")
    assert "gmm" in str(err.value).lower()
    assert live_children() == [] and list((tmp_path / "c" / "samplers").iterdir()) == []


def test_a_build_function_the_child_cannot_import_is_refused(bundle, tmp_path):
    def local_build(weights_dir, steps=5, n_hyp=5):
        return build_sampler(weights_dir, steps=steps, n_hyp=n_hyp)

    with pytest.raises(ExportError, match="cannot be imported"):
        load_or_export(bundle, 2, build=local_build, cache_dir=tmp_path / "c")


def test_partials_of_dead_processes_are_swept(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    mine = tmp_path / f"sampler_s2_k.onnx.{os.getpid()}-aaaa.partial"
    orphan = tmp_path / f"sampler_s2_k.onnx.{dead.pid}-bbbb.partial"
    keep = tmp_path / "sampler_s2_k.onnx"
    for f in (mine, orphan, keep):
        f.write_bytes(b"x")
    assert sweep_partials(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, keep.name])


PARENT = """
import logging, sys, threading
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
from diffpose_ros.backends.export import load_or_export
from diffpose_ros.lifter.sampler import build_sampler
sys.stdout.reconfigure(line_buffering=True)
load_or_export(sys.argv[1], 2, build=build_sampler, cache_dir=sys.argv[2])
"""


def test_the_child_dies_with_its_parent(bundle, tmp_path):
    """A node killed with SIGKILL (no cleanup at all) leaves no export process behind; the
    next build removes its partial file."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(bundle), str(tmp_path / "c")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in parent.stdout:
        lines.append(line)
        if "running in child process" in line:
            break
    pid = child_pid("".join(lines))
    time.sleep(0.5)
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=10)
    wait_until(lambda: process_gone(pid), 5, f"export child {pid} to die with its parent")
    # whatever it left under a temporary name is swept by the next export into that folder
    path = load_or_export(bundle, 2, max_people=3, build=build_sampler, cache_dir=tmp_path / "c")
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
