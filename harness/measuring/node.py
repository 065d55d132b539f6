"""The whole node where it can be read: CPU package and DRAM energy beside GPU energy, over the same window.

    from harness.measuring import node
    node.node_metrics(windows, gpu_energy_joules, duration_s, tokens=..., outputs=...)   # the columns below
    node.show_lines(metrics)                                                               # for ``show``

GPU energy stays the headline (the reference measures GPUs only, so only GPU figures compare with it). Beside
it, what the host's RAPL counters saw (:mod:`harness.measuring.energy` reads them through Zeus) over the same
windows -- the steady window of an LLM run, the timed iterations of a diffusion run:

* ``cpu_energy_joules``, ``dram_energy_joules``: summed over the CPU packages, in joules; null when a window has no
  reading of some package or of some package's DRAM domain (never a partial sum);
* ``avg_cpu_power_watts``, ``avg_dram_power_watts``: that energy over the windows' duration;
* ``node_energy_joules`` = GPU + CPU package + DRAM; null unless all three were measured;
* ``node_energy_per_token_joules`` (LLM) and ``node_energy_per_output_joules`` (per request, image or video);
* ``gpu_share_of_node_fraction``: GPU energy / node energy;
* ``node_energy_note``: where CPU and DRAM energy came from, or why they are null (Zeus' reason).

RAPL counts whole sockets and their memory: every process on the host, the harness and the serving engine's
CPU side included, not only the run's. On a node shared with other work it is an upper bound for the run's CPU
and DRAM energy. A counter that wraps (``max_energy_range_uj``) is unwrapped by Zeus (a polling process counts
the wraps). Fans, disks, network and power-supply losses are outside RAPL and NVML: "node" here means GPUs, CPU
packages and DRAM, nothing more.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.measuring.energy import WindowMeasurement

COLUMNS = (
    "cpu_energy_joules",
    "dram_energy_joules",
    "avg_cpu_power_watts",
    "avg_dram_power_watts",
    "node_energy_joules",
    "node_energy_per_token_joules",
    "node_energy_per_output_joules",
    "gpu_share_of_node_fraction",
)
NOTE = "node_energy_note"


def _total(per_window: list[dict[int, float | None]], packages: list[set[int]]) -> float | None:
    """Summed over windows and packages; None when a window misses a package's reading."""
    if not per_window:
        return None
    total = 0.0
    for readings, wanted in zip(per_window, packages, strict=False):
        if not wanted or set(readings) != wanted or any(v is None for v in readings.values()):
            return None
        total += sum(v for v in readings.values() if v is not None)
    return total


def cpu_note(windows: Iterable[WindowMeasurement]) -> str:
    """Where CPU and DRAM energy came from, or why there is none (the ``cpu:`` part of the energy source)."""
    sources = [w.energy_source for w in windows]
    if not sources:
        return "cpu: not measured (no window was measured)"
    source = sources[-1]
    cpu = source.split("; cpu: ", 1)[1] if "; cpu: " in source else None
    if cpu is None:
        return f"cpu: not measured ({source})"
    if cpu == "zeus/rapl":
        return "cpu: zeus/rapl (whole sockets and their DRAM: every process on the host)"
    return f"cpu: {cpu}"


def node_metrics(
    windows: Iterable[WindowMeasurement],
    gpu_energy_joules: float | None,
    duration_s: float | None,
    *,
    tokens: float | None = None,
    outputs: float | None = None,
) -> dict:
    """The node columns (see the module docstring) for ``windows``; energy in joules, power in watts.

    ``gpu_energy_joules`` is the GPU energy over the same windows, ``duration_s`` their total length in seconds,
    ``tokens`` the output tokens in them (LLM) and ``outputs`` the requests, images or videos they stand for.
    """
    windows = list(windows)
    cpu_maps = [dict(w.cpu_energy_joules) for w in windows]
    packages = [set(m) for m in cpu_maps]
    cpu = _total(cpu_maps, packages)
    dram = _total([dict(w.dram_energy_joules) for w in windows], packages) if cpu is not None else None
    note = cpu_note(windows)
    if cpu is not None and dram is None:
        note += "; dram: not measured (a package has no readable DRAM domain)"
    node = None
    if gpu_energy_joules is not None and cpu is not None and dram is not None:
        node = gpu_energy_joules + cpu + dram

    def per(energy: float | None, amount: float | None) -> float | None:
        return energy / amount if energy is not None and amount else None

    return {
        "cpu_energy_joules": cpu,
        "dram_energy_joules": dram,
        "avg_cpu_power_watts": per(cpu, duration_s),
        "avg_dram_power_watts": per(dram, duration_s),
        "node_energy_joules": node,
        "node_energy_per_token_joules": per(node, tokens),
        "node_energy_per_output_joules": per(node, outputs),
        "gpu_share_of_node_fraction": per(gpu_energy_joules, node),
        NOTE: note,
    }


def _j(value: float | None, unit: str = "J") -> str:
    return "-" if value is None else f"{value:.4g} {unit}"


def show_lines(metrics: dict) -> list[str]:
    """``show``'s lines on the node: GPU + CPU + DRAM energy and their shares, or why CPU and DRAM are null."""
    if NOTE not in metrics:
        return []  # a run measured before the node columns existed
    gpu, cpu, dram = (metrics.get(k) for k in ("gpu_energy_joules", "cpu_energy_joules", "dram_energy_joules"))
    note = metrics.get(NOTE)
    if cpu is None:
        return [f"node       CPU package and DRAM energy not measured ({note}); GPU {_j(gpu)}"]
    total = _j(metrics.get("node_energy_joules"))
    lines = [f"node       GPU {_j(gpu)} + CPU package {_j(cpu)} + DRAM {_j(dram)} = {total}"]
    share = metrics.get("gpu_share_of_node_fraction")
    parts = [
        f"GPU {100 * share:.1f}% of the node" if share is not None else None,
        f"CPU {_j(metrics.get('avg_cpu_power_watts'), 'W')}, DRAM {_j(metrics.get('avg_dram_power_watts'), 'W')}",
    ]
    for key, unit in (("node_energy_per_token_joules", "J/token"), ("node_energy_per_output_joules", "J/output")):
        if metrics.get(key) is not None:
            parts.append(f"node {metrics[key]:.4g} {unit}")
    lines.append("           " + "; ".join(p for p in parts if p))
    lines.append(f"           {note}")
    return lines
