"""The power limit and locked SM clocks: setters in the device layer, preflight's refusals, and the originals kept
on disk and restored -- after a run, and at the next start after a SIGKILL -- at the NVML boundary (a file-backed
fake whose state persists across processes, tests/fake_gpu_settings.py)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import reset_device_caches
from fake_gpu_settings import FakeSettings
from harness.measuring import device, gpu_settings
from harness.measuring.gpu_settings import Wanted

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


@pytest.fixture
def gpus_file(tmp_path, monkeypatch):
    """``make(count=1, root=True, **overrides) -> FakeSettings`` installed for this test."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)

    def make(count=1, root=True, **overrides):
        fake = FakeSettings.create(tmp_path / "gpus.json", count=count, root=root, **overrides)
        fake.install(monkeypatch.setattr)
        reset_device_caches()
        return fake

    yield make
    monkeypatch.undo()
    reset_device_caches()


# --- the device layer ------------------------------------------------------------------------------------------


def test_device_reads_range_limit_and_clocks(gpus_file):
    gpus_file()
    (gpu,) = device.visible_gpus()
    assert gpu.power_limit_range_watts() == (200.0, 700.0)
    assert gpu.power_management_limit_watts() == 700.0
    assert gpu.default_power_limit_watts() == 700.0
    clocks = gpu.supported_sm_clocks_mhz()
    assert clocks == sorted(clocks) and clocks[0] == 345 and clocks[-1] == 1980


def test_device_sets_and_refuses(gpus_file):
    fake = gpus_file()
    (gpu,) = device.visible_gpus()
    gpu.set_power_limit_watts(312.5)
    assert fake.gpu(0)["limit_mw"] == 312_500
    assert gpu.power_limit_watts() == 312.5  # the enforced limit follows
    gpu.lock_sm_clocks_mhz(1410, 1410)
    assert fake.gpu(0)["locked"] == [1410, 1410]
    gpu.reset_sm_clocks()
    assert fake.gpu(0)["locked"] is None
    with pytest.raises(device.SettingRefused) as out_of_range:
        gpu.set_power_limit_watts(900)
    assert out_of_range.value.reason == "invalid-argument"
    fake.set_root(False)
    with pytest.raises(device.SettingRefused) as refused:
        gpu.set_power_limit_watts(400)
    assert refused.value.reason == "no-permission"
    assert "NVML_ERROR_NO_PERMISSION" in str(refused.value) and "\n" not in str(refused.value)
    assert fake.gpu(0)["limit_mw"] == 312_500


# --- preflight -------------------------------------------------------------------------------------------------


def test_problems_allowed_range_and_clocks(gpus_file):
    gpus_file()
    gpus = device.visible_gpus()
    assert gpu_settings.problems(gpus, Wanted()) == []
    assert gpu_settings.problems(gpus, Wanted(power_limit_watts=300)) == []
    assert gpu_settings.problems(gpus, Wanted(power_limit_watts=200, sm_clock_mhz=1410)) == []
    (line,) = gpu_settings.problems(gpus, Wanted(power_limit_watts=150))
    assert line == "power_limit_watts=150 is outside GPU 0's allowed range 200..700 W"
    (line,) = gpu_settings.problems(gpus, Wanted(power_limit_watts=701))
    assert "outside GPU 0's allowed range 200..700 W" in line
    (line,) = gpu_settings.problems(gpus, Wanted(sm_clock_mhz=2100))
    assert line == "sm_clock_mhz=2100 is outside GPU 0's supported SM clocks 345..1980 MHz"
    assert gpu_settings.problems([], Wanted(power_limit_watts=300)) == [
        "power_limit_watts=300 needs a GPU; this run uses none"
    ]


def test_problems_permission_refused_one_line_per_gpu(gpus_file):
    fake = gpus_file(count=2, root=False)
    lines = gpu_settings.problems(device.visible_gpus(), Wanted(power_limit_watts=300))
    assert lines == [
        f"GPU {i}: this process may not set the power limit or clocks (NVML_ERROR_NO_PERMISSION; needs root)"
        for i in (0, 1)
    ]
    assert [g["limit_mw"] for g in fake.read()["gpus"]] == [700_000, 700_000]


def test_permission_probe_changes_nothing(gpus_file):
    fake = gpus_file()
    (gpu,) = device.visible_gpus()
    gpu.set_power_limit_watts(450)
    assert gpu_settings.problems([gpu], Wanted(power_limit_watts=300)) == []
    assert fake.gpu(0)["limit_mw"] == 450_000  # the probe wrote the current limit back
    assert fake.calls()[-1] == ["set_limit", "GPU-fake-0000", 450_000]


# --- apply and restore -----------------------------------------------------------------------------------------


def test_apply_keeps_original_on_disk_then_restores(gpus_file, tmp_path):
    fake = gpus_file(count=2)
    results = tmp_path / "results"
    held = gpu_settings.apply(results, device.visible_gpus(), Wanted(power_limit_watts=300, sm_clock_mhz=1410))
    assert [g["limit_mw"] for g in fake.read()["gpus"]] == [300_000, 300_000]
    assert [g["locked"] for g in fake.read()["gpus"]] == [[1410, 1410]] * 2
    on_disk = json.loads((results / ".gpu-settings.json").read_text())["entries"]
    assert set(on_disk) == {"GPU-fake-0000", "GPU-fake-0001"}
    entry = on_disk["GPU-fake-0000"]
    assert entry["original_power_limit_watts"] == 700.0 and entry["sm_clocks_locked"] is True
    assert entry["owner"]["pid"] == os.getpid()
    assert held.record["gpus"]["1"] == {
        "uuid": "GPU-fake-0001",
        "original_power_limit_watts": 700.0,
        "power_limit_watts": 300.0,
        "enforced_power_limit_watts": 300.0,
        "sm_clock_locked_mhz": [1410, 1410],
    }
    assert held.restore() == []
    assert [g["limit_mw"] for g in fake.read()["gpus"]] == [700_000, 700_000]
    assert [g["locked"] for g in fake.read()["gpus"]] == [None, None]
    assert not (results / ".gpu-settings.json").exists()
    assert held.record["restored"] is True
    assert held.restore() == []  # twice is harmless


def test_refusal_part_way_restores_what_was_set(gpus_file, tmp_path):
    fake = gpus_file(count=2)
    state = fake.read()
    state["gpus"][1]["max_mw"] = 250_000  # GPU 1 refuses 300 W
    fake.write(state)
    with pytest.raises(device.SettingRefused):
        gpu_settings.apply(tmp_path, device.visible_gpus(), Wanted(power_limit_watts=300))
    assert [g["limit_mw"] for g in fake.read()["gpus"]] == [700_000, 700_000]
    assert not (tmp_path / ".gpu-settings.json").exists()


def test_permission_refused_at_apply_leaves_no_entry(gpus_file, tmp_path):
    gpus_file(root=False)
    with pytest.raises(device.SettingRefused, match="NO_PERMISSION"):
        gpu_settings.apply(tmp_path, device.visible_gpus(), Wanted(power_limit_watts=300))
    assert not (tmp_path / ".gpu-settings.json").exists()


def test_failed_restore_keeps_the_entry(gpus_file, tmp_path):
    fake = gpus_file()
    held = gpu_settings.apply(tmp_path, device.visible_gpus(), Wanted(power_limit_watts=300))
    fake.set_root(False)
    (line,) = held.restore()
    assert "could not restore power limit 700 W" in line and "kept for the next start" in line
    assert held.record["restored"] is False and held.record["restore_problems"] == [line]
    assert "GPU-fake-0000" in gpu_settings.read_state(tmp_path)
    fake.set_root(True)
    assert held.restore() == []
    assert fake.gpu(0)["limit_mw"] == 700_000 and gpu_settings.read_state(tmp_path) == {}


def _entry(uuid: str, who: dict, original_watts: float) -> dict:
    return {
        "uuid": uuid,
        "nvml_index": 0,
        "owner": who,
        "set_at": "2025-01-01T00:00:00+00:00",
        "original_power_limit_watts": original_watts,
    }


def _write_state(results: Path, entries: dict) -> None:
    results.mkdir(parents=True, exist_ok=True)
    (results / ".gpu-settings.json").write_text(json.dumps({"schema": 1, "entries": entries}))


def _live_other_owner() -> dict:
    parent = os.getppid()  # alive while this test runs
    stat = Path(f"/proc/{parent}/stat").read_text()
    return {
        "host": socket.gethostname(),
        "boot_id": Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
        "pid": parent,
        "pid_start": stat.rsplit(")", 1)[-1].split()[19],
    }


def test_settings_held_by_a_live_process_are_left_alone(gpus_file, tmp_path):
    fake = gpus_file()
    held_by = _live_other_owner()
    _write_state(tmp_path, {"GPU-fake-0000": _entry("GPU-fake-0000", held_by, 700.0)})
    with pytest.raises(gpu_settings.SettingsHeld, match=f"held by process {held_by['pid']}"):
        gpu_settings.apply(tmp_path, device.visible_gpus(), Wanted(power_limit_watts=300))
    assert fake.gpu(0)["limit_mw"] == 700_000
    assert gpu_settings.restore_leftovers(tmp_path) == []  # alive: not restored
    other_host = dict(held_by, host="another-node")
    _write_state(tmp_path, {"GPU-fake-0000": _entry("GPU-fake-0000", other_host, 700.0)})
    assert gpu_settings.restore_leftovers(tmp_path) == []  # another host's entry: not ours to judge
    assert "GPU-fake-0000" in gpu_settings.read_state(tmp_path)


def test_a_dead_owners_original_is_kept(gpus_file, tmp_path):
    """A harness died with the GPU at 300 W (original 700 W); the next run sets 400 W without restoring first:
    the original on disk stays 700 W, and restoring puts 700 W back."""
    fake = gpus_file()
    (gpu,) = device.visible_gpus()
    gpu.set_power_limit_watts(300)
    dead = dict(gpu_settings.owner(), pid=2**22 + 12345, pid_start="1")
    _write_state(tmp_path, {"GPU-fake-0000": _entry("GPU-fake-0000", dead, 700.0)})
    held = gpu_settings.apply(tmp_path, [gpu], Wanted(power_limit_watts=400))
    assert fake.gpu(0)["limit_mw"] == 400_000
    assert gpu_settings.read_state(tmp_path)["GPU-fake-0000"]["original_power_limit_watts"] == 700.0
    assert held.restore() == []
    assert fake.gpu(0)["limit_mw"] == 700_000


def test_damaged_state_file_is_one_line(tmp_path):
    (tmp_path / ".gpu-settings.json").write_text("{not json")
    with pytest.raises(Exception) as err:  # noqa: PT011
        gpu_settings.restore_leftovers(tmp_path)
    assert "is damaged" in str(err.value) and "\n" not in str(err.value)


# --- SIGKILL between set and restore ---------------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import sys, time
    sys.path[:0] = [{tests!r}, {root!r}]
    import pynvml
    from fake_gpu_settings import FakeSettings
    FakeSettings({gpus!r}).install(setattr)
    from harness.measuring import device, gpu_settings
    gpu_settings.apply({results!r}, device.visible_gpus(), gpu_settings.Wanted(power_limit_watts=300, sm_clock_mhz=1410))
    print("set", flush=True)
    time.sleep(600)
""")  # noqa: E501


def test_restore_at_next_start_after_sigkill(gpus_file, tmp_path):
    fake = gpus_file(count=2)
    results = tmp_path / "results"
    script = CHILD.format(tests=str(TESTS), root=str(ROOT), gpus=str(fake.path), results=str(results))
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        line = child.stdout.readline()
        assert line.strip() == "set", child.stderr.read()
        assert [g["limit_mw"] for g in fake.read()["gpus"]] == [300_000, 300_000]
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    # the killed process restored nothing: the GPUs keep its settings, the originals are on disk
    assert [g["limit_mw"] for g in fake.read()["gpus"]] == [300_000, 300_000]
    assert [g["locked"] for g in fake.read()["gpus"]] == [[1410, 1410]] * 2
    entries = gpu_settings.read_state(results)
    assert {e["owner"]["pid"] for e in entries.values()} == {child.pid}
    lines = gpu_settings.restore_leftovers(results)  # the next start
    assert lines == [
        f"GPU GPU-fake-000{i}: restored power limit 700 W, SM clock unlocked left set by process "
        f"{child.pid} (no longer running)"
        for i in (0, 1)
    ]
    assert [g["limit_mw"] for g in fake.read()["gpus"]] == [700_000, 700_000]
    assert [g["locked"] for g in fake.read()["gpus"]] == [None, None]
    assert not (results / ".gpu-settings.json").exists()
    assert gpu_settings.restore_leftovers(results) == []


def test_a_dead_owners_clock_lock_is_undone_with_our_power_limit(gpus_file, tmp_path):
    fake = gpus_file()
    (gpu,) = device.visible_gpus()
    gpu.lock_sm_clocks_mhz(1005, 1005)
    dead = dict(gpu_settings.owner(), pid=2**22 + 12346, pid_start="1")
    _write_state(
        tmp_path,
        {
            "GPU-fake-0000": {
                "uuid": "GPU-fake-0000",
                "nvml_index": 0,
                "owner": dead,
                "set_at": "2025-01-01T00:00:00+00:00",
                "sm_clocks_locked": True,
            }
        },
    )
    held = gpu_settings.apply(tmp_path, [gpu], Wanted(power_limit_watts=400))
    assert held.restore() == []
    assert fake.gpu(0)["limit_mw"] == 700_000 and fake.gpu(0)["locked"] is None
    assert gpu_settings.read_state(tmp_path) == {}
