"""The power cap and the locked SM clock around a run: set before it, restored after it, and restored at the next
start where a harness died in between.

    held = set_for_run(run)          # execute.execute: after the meter opens, before the backend starts
    ...
    restore_after_run(run)           # execute's stop step: after the sampler and the backend stopped
    restore_at_start(results, out)   # runner.measure_study: before anything is measured

The settings come from the configuration's ``power_limit_watts`` and ``sm_clock_mhz`` knobs
(:mod:`harness.config`); :mod:`harness.measuring.gpu_settings` sets them through the device layer and keeps
the originals in ``<results>/.gpu-settings.json`` until they are restored. ``run.json`` records what was asked,
each GPU's original and the value read back after setting, and whether the originals were restored
(``gpu_settings``). A setting the driver refuses fails the run (cause ``gpu-settings``); preflight refuses such
configurations before a sweep starts, so this is the case of a host that changed since.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

from harness.workloads.base import WorkloadError


def set_for_run(run: Any) -> Any:
    """Set the GPU settings ``run.cfg`` asks for on the run's GPUs; the :class:`gpu_settings.Held` to restore,
    or None when it asks for none. Raises WorkloadError (cause ``gpu-settings``) where they cannot be set."""
    from harness.measuring import device, gpu_settings

    wanted = gpu_settings.Wanted.of(run.cfg)
    if not wanted:
        return None
    try:
        if not run.gpu_indices:
            raise device.SettingRefused("this run uses no GPU", "not-supported")
        visible = device.visible_gpus()
        gpus = [visible[i] for i in run.gpu_indices]
        # <results>/<study>/<run-id>: the originals live beside the studies, where the next start looks
        return gpu_settings.apply(Path(run.run_dir).parent.parent, gpus, wanted)
    except (device.SettingRefused, device.NvmlUnavailable, gpu_settings.SettingsHeld, IndexError) as exc:
        raise WorkloadError(f"cannot set {wanted.describe()}: {exc}", cause="gpu-settings") from exc


def restore_after_run(run: Any) -> None:
    """Put the run's GPUs back as they were; what was set and restored goes to ``run.record["gpu_settings"]``.
    Never raises: a setting that could not be restored is recorded (and stays on disk for the next start)."""
    held = getattr(run, "held", None)
    if held is None:
        return
    try:
        held.restore()
    except Exception as exc:  # noqa: BLE001 -- the state file could not be rewritten: the next start retries
        held.record["restored"] = False
        held.record.setdefault("restore_problems", []).append(f"{type(exc).__name__}: {exc}")
    run.record["gpu_settings"] = held.record
    run.held = None


def restore_at_start(results_dir: Path | str, out: TextIO) -> list[str]:
    """Restore what a harness that died (SIGKILL, a lost node) left set on this host's GPUs; prints and
    returns one line per GPU (none when nothing was left)."""
    from harness.measuring import gpu_settings

    lines = gpu_settings.restore_leftovers(results_dir)
    for line in lines:
        print(f"gpu settings: {line}", file=out, flush=True)
    return lines
