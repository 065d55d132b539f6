"""The whole node where it can be read: CPU package and DRAM energy beside GPU energy.

The boundary is the one Zeus reads: a RAPL tree (``<RAPL_DIR>/intel-rapl:<package>/energy_uj``, its
``max_energy_range_uj`` and a ``dram`` sub-zone) built in a temporary folder, with Zeus' RAPL_DIR pointed at it;
ZeusMonitor and the harness' meter run their real code over it. Covered: packages and DRAM beside a (fake NVML)
GPU, a counter that wraps, a package that cannot be read (permission), no RAPL at all, a package without DRAM,
and the columns every run gets (:mod:`harness.measuring.node`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from conftest import FakeClock, FakeGPU
from harness.measuring import node
from harness.measuring.energy import WindowMeasurement, ZeusMeter
from harness.measuring.steady import diffusion_metrics, llm_metrics
from harness.workloads.base import IterationRecord, RequestRecord

MAX_UJ = 262_143_328_850  # a typical max_energy_range_uj


class RaplTree:
    """A fake ``/sys/class/powercap/intel-rapl`` (values in microjoules, written atomically)."""

    def __init__(self, root: Path):
        self.root = root

    def _dir(self, package: int, dram: bool = False) -> Path:
        top = self.root / f"intel-rapl:{package}"
        return top / f"intel-rapl:{package}:0" if dram else top

    def package(self, index: int, energy_uj: int, dram_uj: int | None = None, max_uj: int = MAX_UJ) -> None:
        for is_dram, value, name in ((False, energy_uj, f"package-{index}"), (True, dram_uj, "dram")):
            if value is None:
                continue
            folder = self._dir(index, is_dram)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "name").write_text(name + "\n")
            (folder / "max_energy_range_uj").write_text(f"{max_uj}\n")
            self.set(index, value, dram=is_dram)

    def set(self, index: int, energy_uj: int, dram: bool = False) -> None:
        path = self._dir(index, dram) / "energy_uj"
        tmp = path.with_name(".energy_uj.tmp")
        tmp.write_text(f"{energy_uj}\n")
        os.replace(tmp, path)

    def add(self, index: int, joules: float, dram: bool = False) -> None:
        path = self._dir(index, dram) / "energy_uj"
        self.set(index, int(path.read_text()) + round(joules * 1e6), dram=dram)

    def energy_file(self, index: int, dram: bool = False) -> Path:
        return self._dir(index, dram) / "energy_uj"


def _reset_zeus_cpus() -> None:
    import zeus.device.cpu as zeus_cpu
    from zeus.device.cpu import rapl

    cpus = zeus_cpu._cpus
    for cpu in getattr(cpus, "cpus", None) or []:  # stop Zeus' wrap-tracking processes of this test's tree
        for file in (getattr(cpu, "rapl_file", None), getattr(cpu, "dram", None)):
            tracker = getattr(file, "_wraparound_tracker", None)
            if tracker is not None:
                tracker._stop()
    zeus_cpu._cpus = None
    rapl.rapl_is_available.cache_clear()


@pytest.fixture
def rapl(tmp_path, monkeypatch):
    """A fake RAPL tree that Zeus reads (its RAPL_DIR pointed at it); ``.deny(path)`` makes a file unreadable."""
    from zeus.device.cpu import rapl as zeus_rapl

    tree = RaplTree(tmp_path / "powercap" / "intel-rapl")
    tree.root.mkdir(parents=True)
    monkeypatch.setattr(zeus_rapl, "RAPL_DIR", str(tree.root))
    monkeypatch.setattr(zeus_rapl, "CONTAINER_RAPL_DIR", str(tmp_path / "no-container-tree"))
    _reset_zeus_cpus()

    def deny(path: Path) -> None:
        """Reading ``path`` fails with a permission error, as energy_uj does for a user without root."""
        if os.geteuid() != 0:
            path.chmod(0)
            return
        real_open = open  # root reads any file: refuse it where Zeus opens it (the module's own ``open``)

        def guarded(file, *args, **kwargs):
            if str(file) == str(path):
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(zeus_rapl, "open", guarded, raising=False)

    tree.deny = deny
    yield tree
    _reset_zeus_cpus()
    monkeypatch.undo()
    _reset_zeus_cpus()


def _wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


# --- reading RAPL through Zeus ---------------------------------------------------------------------------------


def test_cpu_packages_and_dram_beside_the_gpu(rapl, fake_nvml):
    clock = FakeClock(1000.0)
    gpu = FakeGPU([(990.0, 80.0), (1000.0, 400.0)], clock=clock)
    fake_nvml([gpu])
    rapl.package(0, energy_uj=5_000_000_000, dram_uj=700_000_000)
    rapl.package(1, energy_uj=9_000_000_000, dram_uj=800_000_000)
    meter = ZeusMeter([0], clock=clock)
    assert meter.energy_source == "zeus/nvml-energy-counter; cpu: zeus/rapl"
    meter.begin("steady")
    clock.advance(10.0)
    rapl.add(0, 600.0)
    rapl.add(1, 550.0)
    rapl.add(0, 120.0, dram=True)
    rapl.add(1, 110.0, dram=True)
    window = meter.end("steady")
    assert window.gpu_energy_joules[0] == pytest.approx(4000.0, abs=2e-3)
    assert window.cpu_energy_joules == pytest.approx({0: 600.0, 1: 550.0})
    assert window.dram_energy_joules == pytest.approx({0: 120.0, 1: 110.0})

    columns = node.node_metrics([window], window.total_gpu_energy_joules, window.duration_s, tokens=2000, outputs=8)
    assert columns["cpu_energy_joules"] == pytest.approx(1150.0)
    assert columns["dram_energy_joules"] == pytest.approx(230.0)
    assert columns["avg_cpu_power_watts"] == pytest.approx(115.0)
    assert columns["avg_dram_power_watts"] == pytest.approx(23.0)
    assert columns["node_energy_joules"] == pytest.approx(5380.0, abs=2e-3)
    assert columns["node_energy_per_token_joules"] == pytest.approx(5380.0 / 2000, abs=1e-6)
    assert columns["node_energy_per_output_joules"] == pytest.approx(5380.0 / 8, abs=1e-3)
    assert columns["gpu_share_of_node_fraction"] == pytest.approx(4000.0 / 5380.0, abs=1e-6)
    assert columns["node_energy_note"].startswith("cpu: zeus/rapl (whole sockets")


def test_a_counter_that_wraps_is_unwrapped(rapl, no_nvml):
    """energy_uj passes max_energy_range_uj and starts again near 0 inside the window: Zeus' tracking process
    counts the wrap, and the window holds the energy actually spent (3 J), not a negative difference."""
    high = MAX_UJ - 2_000_000  # 2 J below the wrap
    rapl.package(0, energy_uj=high)
    meter = ZeusMeter(None)
    assert meter.cpu_source == "cpu: zeus/rapl"
    meter.begin("first-read")  # Zeus starts its wrap tracker at the first read
    meter.end("first-read")
    import zeus.device.cpu as zeus_cpu

    tracker = zeus_cpu._cpus.cpus[0].rapl_file.wraparound_tracker
    low = 50_000_000
    # make sure the tracker is polling: wrap high -> low until it has counted one (it may start after a write)
    deadline = time.monotonic() + 90
    while tracker.get_num_wraparounds() == 0:
        assert time.monotonic() < deadline, "Zeus' RAPL wrap tracker never counted a wrap"
        rapl.set(0, high)
        time.sleep(0.3)
        rapl.set(0, low)
        _wait_for(lambda: tracker.get_num_wraparounds() > 0, 2.0)
    counted = tracker.get_num_wraparounds()
    rapl.set(0, high)
    meter.begin("steady")
    rapl.set(0, 1_000_000)  # wrapped: below any value the tracker saw last, so it counts exactly one more
    assert _wait_for(lambda: tracker.get_num_wraparounds() == counted + 1, 60.0)
    window = meter.end("steady")
    assert window.cpu_energy_joules[0] == pytest.approx(3.0, abs=1e-6)
    assert node.node_metrics([window], None, 1.0)["cpu_energy_joules"] == pytest.approx(3.0, abs=1e-6)


def test_a_package_that_cannot_be_read_gives_null_with_the_reason(rapl, no_nvml):
    rapl.package(0, energy_uj=1_000_000, dram_uj=1_000_000)
    rapl.package(1, energy_uj=1_000_000, dram_uj=1_000_000)
    rapl.deny(rapl.energy_file(1))
    clock = FakeClock()
    meter = ZeusMeter(None, clock=clock)
    denied = rapl.energy_file(1)
    assert meter.cpu_source == (
        f"cpu: not measured (RAPL package 1 cannot be read: permission denied on {denied} "
        f"(RAPL needs root or read access to energy_uj))"
    )
    meter.begin("steady")
    clock.advance(5.0)
    rapl.add(0, 100.0)  # package 0 is readable, but a partial sum would be invented: nothing is reported
    window = meter.end("steady")
    assert window.cpu_energy_joules == {} and window.dram_energy_joules == {}
    columns = node.node_metrics([window], None, window.duration_s)
    assert columns["cpu_energy_joules"] is None and columns["dram_energy_joules"] is None
    assert columns["node_energy_joules"] is None and columns["avg_cpu_power_watts"] is None
    assert columns["node_energy_note"] == meter.cpu_source
    (line,) = node.show_lines({"gpu_energy_joules": None, **columns})
    assert "CPU package and DRAM energy not measured" in line and "permission denied" in line


def test_no_rapl_at_all(rapl, no_nvml, tmp_path, monkeypatch):
    from zeus.device.cpu import rapl as zeus_rapl

    monkeypatch.setattr(zeus_rapl, "RAPL_DIR", str(tmp_path / "nothing-here"))
    _reset_zeus_cpus()
    meter = ZeusMeter(None)
    assert meter.cpu_source == f"cpu: not measured (no RAPL on this host: {tmp_path / 'nothing-here'} does not exist)"


def test_a_package_without_dram_leaves_dram_null_not_partial(rapl, no_nvml):
    rapl.package(0, energy_uj=1_000_000, dram_uj=1_000_000)
    rapl.package(1, energy_uj=1_000_000)
    clock = FakeClock()
    meter = ZeusMeter(None, clock=clock)
    meter.begin("steady")
    clock.advance(2.0)
    rapl.add(0, 40.0)
    rapl.add(1, 30.0)
    rapl.add(0, 6.0, dram=True)
    window = meter.end("steady")
    assert window.dram_energy_joules == pytest.approx({0: 6.0})
    columns = node.node_metrics([window], 100.0, window.duration_s)
    assert columns["cpu_energy_joules"] == pytest.approx(70.0)
    assert columns["dram_energy_joules"] is None and columns["node_energy_joules"] is None
    assert "dram: not measured" in columns["node_energy_note"]


# --- every run's columns ---------------------------------------------------------------------------------------


def _window(name, start, end, gpu, cpu, dram, source="zeus/nvml-energy-counter; cpu: zeus/rapl"):
    return WindowMeasurement(
        name=name,
        start_time_s=start,
        end_time_s=end,
        gpu_energy_joules=gpu,
        cpu_energy_joules=cpu,
        dram_energy_joules=dram,
        energy_source=source,
    )


def _request(rid, tokens):
    return RequestRecord(
        request_id=rid,
        prompt_tokens=10,
        target_output_tokens=len(tokens),
        output_tokens=len(tokens),
        submit_time_s=0.0,
        first_token_time_s=tokens[0],
        finish_time_s=tokens[-1],
        token_times_s=list(tokens),
    )


def test_llm_run_gets_node_columns_and_keeps_gpu_figures():
    requests = [_request(i, [1.0 + 0.1 * k for k in range(20)]) for i in range(4)]
    window = _window("steady", 0.5, 3.5, {0: 300.0}, {0: 60.0, 1: 40.0}, {0: 10.0, 1: 10.0})
    metrics, _ = llm_metrics(requests, {"steady": window}, max_num_seqs=4)
    tokens = metrics["steady_output_tokens"]
    assert tokens == 80
    assert metrics["energy_per_token_joules"] == pytest.approx(300.0 / 80)  # the headline stays GPU-only
    assert metrics["node_energy_joules"] == pytest.approx(420.0)
    assert metrics["node_energy_per_token_joules"] == pytest.approx(420.0 / 80)
    assert metrics["node_energy_per_output_joules"] == pytest.approx(420.0 / 80 * 20)
    assert metrics["avg_cpu_power_watts"] == pytest.approx(100.0 / 3.0)
    assert metrics["gpu_share_of_node_fraction"] == pytest.approx(300.0 / 420.0)


def test_cpu_host_run_says_why_node_is_null():
    requests = [_request(i, [1.0 + 0.1 * k for k in range(5)]) for i in range(2)]
    source = (
        "none: no NVIDIA GPU (NVML: Driver Not Loaded); cpu: not measured (no RAPL on this host: /x does not exist)"
    )
    window = _window("steady", 0.5, 2.0, {}, {}, {}, source=source)
    metrics, _ = llm_metrics(requests, {"steady": window}, max_num_seqs=2)
    assert metrics["energy_per_token_joules"] is None and metrics["node_energy_joules"] is None
    assert metrics["cpu_energy_joules"] is None
    assert metrics["node_energy_note"] == "cpu: not measured (no RAPL on this host: /x does not exist)"


def test_diffusion_run_gets_node_columns_over_every_iteration():
    iterations = [
        IterationRecord(index=i, start_time_s=10.0 * i, end_time_s=10.0 * i + 4.0, batch_size=2, outputs=2)
        for i in range(3)
    ]
    windows = {
        f"iter-{i}": _window(f"iter-{i}", 10.0 * i, 10.0 * i + 4.0, {0: 800.0}, {0: 100.0}, {0: 20.0}) for i in range(3)
    }
    metrics, _ = diffusion_metrics(iterations, windows, "image")
    assert metrics["energy_per_image_joules"] == pytest.approx(400.0)
    assert metrics["node_energy_joules"] == pytest.approx(3 * 920.0)
    assert metrics["node_energy_per_output_joules"] == pytest.approx(3 * 920.0 / 6)
    assert metrics["avg_dram_power_watts"] == pytest.approx(60.0 / 12.0)
    del windows["iter-1"]  # an iteration without a window: no node figure rather than two thirds of one
    metrics, _ = diffusion_metrics(iterations, windows, "image")
    assert metrics["cpu_energy_joules"] is None and metrics["node_energy_joules"] is None


def test_show_lines():
    metrics = {
        "gpu_energy_joules": 300.0,
        **node.node_metrics(
            [_window("steady", 0.0, 10.0, {0: 300.0}, {0: 80.0}, {0: 20.0})], 300.0, 10.0, tokens=100, outputs=4
        ),
    }
    lines = node.show_lines(metrics)
    assert lines[0] == "node       GPU 300 J + CPU package 80 J + DRAM 20 J = 400 J"
    assert lines[1] == ("           GPU 75.0% of the node; CPU 8 W, DRAM 2 W; node 4 J/token; node 100 J/output")
    assert lines[2].startswith("           cpu: zeus/rapl")
    assert node.show_lines({"gpu_energy_joules": 1.0}) == []  # a run from before the node columns
