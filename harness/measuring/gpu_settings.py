"""GPU settings a run changes -- the power limit and locked SM clocks -- with the originals kept on disk.

    from harness.measuring import gpu_settings
    gpu_settings.restore_leftovers(results)          # at start: put back what a killed harness left set
    wanted = gpu_settings.Wanted(power_limit_watts=300)
    gpu_settings.problems(gpus, wanted)              # preflight: [] or one line per refusal
    held = gpu_settings.apply(results, gpus, wanted) # before the run (the originals are on disk first)
    ...
    held.restore()                                   # after it, whatever happened; [] or one line per problem
    held.record                                      # for run.json: requested, per GPU original/set, restored

Every change goes through :mod:`harness.measuring.device` (the same NVML calls Zeus' GPU API makes).

**The originals on disk.** Before a setting changes on a GPU, its original values are written to
``<results>/.gpu-settings.json`` -- atomically (a temporary file renamed over it) and under an exclusive lock on
``<results>/.gpu-settings.lock``, so harness processes sharing a results folder keep each other's entries -- one
entry per GPU, keyed by its UUID (``CUDA_VISIBLE_DEVICES`` may differ at the next start), naming the process that
owns it (host, boot id, pid and the pid's start time, so a reused pid is not taken for the owner). After the run
the originals are set again and the entry removed. A harness killed in between (SIGKILL, a lost node) leaves the
entry, and the next start (:func:`restore_leftovers`) restores every entry whose owner is no longer alive on this
host; entries of live processes and of other hosts are left alone. An entry that cannot be restored (no NVML, the
GPU gone, a refusal) stays for the next start, and the reason is reported.

**Locked clocks.** NVML has no reading of a locked range, so the original is "unlocked": restoring resets the
lock (nvmlDeviceResetGpuLockedClocks). A GPU whose clocks an administrator had locked is unlocked afterwards.

**Preflight.** :func:`problems` refuses, one line each: a limit outside the GPU's allowed range (NVML's
constraints), a clock outside its supported SM clocks, a MIG slice (a setting would change the whole GPU it
shares), and a process that may not set it (NVML_ERROR_NO_PERMISSION), learnt by writing the current power
limit back unchanged -- the locked-clock setter needs the same privilege.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import functools
import json
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.measuring import device
from harness.measuring.store import atomic_write_json

STATE_FILE = ".gpu-settings.json"
LOCK_FILE = ".gpu-settings.lock"
SCHEMA = 1


class SettingsHeld(HarnessError):
    """A GPU's settings are held by another live harness process (its originals are on disk under its name)."""


@dataclass(frozen=True)
class Wanted:
    """The settings a run asks for; None leaves a setting as the host has it."""

    power_limit_watts: float | None = None  # the GPU power cap, watts (each GPU of the run)
    sm_clock_mhz: int | None = None  # lock the SM clock at this frequency, MHz (min = max)

    def __bool__(self) -> bool:
        return self.power_limit_watts is not None or self.sm_clock_mhz is not None

    @classmethod
    def of(cls, cfg: Any) -> Wanted:
        """The settings a Configuration asks for (its ``power_limit_watts`` and ``sm_clock_mhz`` knobs)."""
        return cls(getattr(cfg, "power_limit_watts", None), getattr(cfg, "sm_clock_mhz", None))

    def describe(self) -> str:
        """e.g. ``"power_limit_watts=300, sm_clock_mhz=1410"``."""
        return ", ".join(
            f"{k}={v:g}"
            for k, v in (("power_limit_watts", self.power_limit_watts), ("sm_clock_mhz", self.sm_clock_mhz))
            if v is not None
        )


# --- preflight ------------------------------------------------------------------------------------------------


def problems(gpus: list[device.GPU], wanted: Wanted) -> list[str]:
    """Why ``wanted`` cannot be set on ``gpus`` (one line per problem), or [] when it can.

    Writes each GPU's current power limit back unchanged to learn whether this process may set it.
    """
    if not wanted:
        return []
    if not gpus:
        return [f"{wanted.describe()} needs a GPU; this run uses none"]
    out: list[str] = []
    for gpu in gpus:
        name = f"GPU {gpu.cuda_index}"
        if gpu.mig:
            out.append(f"{name} is a MIG slice: {wanted.describe()} would change the whole GPU it shares")
            continue
        try:
            out += _range_problems(gpu, name, wanted)
            permission = _permission_problem(gpu, name)
        except device.ReadingUnsupported as exc:
            out.append(
                f"{name} has no settable {'power limit' if wanted.power_limit_watts is not None else 'SM clock'}"
                f" ({exc})"
            )
            continue
        if permission:
            out.append(permission)
    return out


def _range_problems(gpu: device.GPU, name: str, wanted: Wanted) -> list[str]:
    out = []
    if wanted.power_limit_watts is not None:
        low, high = gpu.power_limit_range_watts()
        if not low <= wanted.power_limit_watts <= high:
            out.append(
                f"power_limit_watts={wanted.power_limit_watts:g} is outside {name}'s allowed range {low:g}..{high:g} W"
            )
    if wanted.sm_clock_mhz is not None:
        clocks = gpu.supported_sm_clocks_mhz()
        if not clocks:
            out.append(f"{name} lists no SM clocks it can be locked to")
        elif not clocks[0] <= wanted.sm_clock_mhz <= clocks[-1]:
            out.append(
                f"sm_clock_mhz={wanted.sm_clock_mhz} is outside {name}'s supported SM clocks "
                f"{clocks[0]}..{clocks[-1]} MHz"
            )
    return out


def _permission_problem(gpu: device.GPU, name: str) -> str | None:
    """A line when this process may not change ``gpu``'s settings (the current limit written back unchanged)."""
    try:
        gpu.set_power_limit_watts(gpu.power_management_limit_watts())
    except device.SettingRefused as exc:
        if exc.reason == "no-permission":
            return f"{name}: this process may not set the power limit or clocks (NVML_ERROR_NO_PERMISSION; needs root)"
        if exc.reason == "not-supported":
            return None  # no power limit to probe with; the clock setter says at run time
        raise
    return None


# --- the state file --------------------------------------------------------------------------------------------


def state_path(results_dir: Path | str) -> Path:
    """``<results>/.gpu-settings.json``: the originals of every setting a harness changed and has not restored."""
    return Path(results_dir) / STATE_FILE


def read_state(results_dir: Path | str) -> dict[str, dict]:
    """The entries on disk, by GPU UUID ({} when there is no file). A damaged file raises HarnessError."""
    path = state_path(results_dir)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    try:
        return dict(json.loads(text)["entries"])
    except (ValueError, KeyError, TypeError) as exc:
        raise HarnessError(  # noqa: B904
            f"{path} is damaged ({type(exc).__name__}: {exc}); it holds original GPU settings to "
            f"restore: check the GPUs' power limits by hand (nvidia-smi -q -d POWER), then delete it"
        )


@contextlib.contextmanager
def _locked_state(results_dir: Path | str) -> Iterator[dict[str, dict]]:
    """The entries under an exclusive lock; what the caller leaves in the dict is written back atomically."""
    folder = Path(results_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        entries = read_state(folder)
        before = json.dumps(entries, sort_keys=True)
        yield entries
        if json.dumps(entries, sort_keys=True) != before:
            if entries:
                atomic_write_json(state_path(folder), {"schema": SCHEMA, "entries": entries})
            else:
                state_path(folder).unlink(missing_ok=True)


# --- owners ----------------------------------------------------------------------------------------------------


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def _start_ticks(pid: int) -> str | None:
    """A process' start time in clock ticks since boot (/proc/<pid>/stat field 22), or None."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]  # fields after the command name start at field 3


def owner() -> dict:
    """This process as an owner of settings: host, boot id, pid and the pid's start time."""
    pid = os.getpid()
    return {
        "host": socket.gethostname(),
        "boot_id": _read("/proc/sys/kernel/random/boot_id"),
        "pid": pid,
        "pid_start": _start_ticks(pid),
    }


def owner_alive(who: dict) -> bool | None:
    """Whether the owning process still runs: None for another host (unknown here)."""
    if who.get("host") != socket.gethostname():
        return None
    boot = _read("/proc/sys/kernel/random/boot_id")
    if boot is not None and who.get("boot_id") not in (None, boot):
        return False  # the host rebooted since
    pid = who.get("pid")
    if not isinstance(pid, int):
        return False
    start = _start_ticks(pid)
    if start is not None:
        return who.get("pid_start") in (None, start)
    if os.path.isdir("/proc"):
        return False  # no /proc/<pid>: gone
    try:  # a host without /proc
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


# --- apply and restore -----------------------------------------------------------------------------------------


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class Held:
    """Settings applied to a run's GPUs; :meth:`restore` puts the originals back (once)."""

    results_dir: Path
    wanted: Wanted
    gpus: list[tuple[device.GPU, dict]] = field(default_factory=list)  # (gpu, its state entry)
    record: dict = field(default_factory=dict)

    def restore(self) -> list[str]:
        """Set every original value again and drop the entries; returns one line per setting that could not be
        restored (its entry stays on disk for the next start). Safe to call twice."""
        problems_, left = [], []
        for gpu, entry in self.gpus:
            problem = _restore_entry(gpu, entry)
            if problem:
                problems_.append(problem)
                left.append((gpu, entry))
                continue
            with _locked_state(self.results_dir) as entries:
                if (entries.get(entry["uuid"]) or {}).get("owner") == entry["owner"]:
                    del entries[entry["uuid"]]
        self.gpus = left
        self.record["restored"] = not problems_
        if problems_:
            self.record["restore_problems"] = problems_
        return problems_


def apply(results_dir: Path | str, gpus: list[device.GPU], wanted: Wanted) -> Held:
    """Set ``wanted`` on ``gpus`` (each GPU's original written to disk first); returns what to restore.

    A refusal part-way (:class:`device.SettingRefused`) restores what was set already and propagates. A GPU whose
    entry another live process owns raises :class:`SettingsHeld` before anything changes on it.
    """
    held = Held(
        Path(results_dir),
        wanted,
        record={
            "power_limit_watts": wanted.power_limit_watts,
            "sm_clock_mhz": wanted.sm_clock_mhz,
            "state_file": str(state_path(results_dir)),
            "gpus": {},
            "restored": None,
        },
    )
    if not wanted:
        return held
    me = owner()
    try:
        for gpu in gpus:
            entry, inherited = _claim(held.results_dir, gpu, wanted, me)
            # what is changed on this GPU so far: a dead owner's changes, then ours as they are made
            done = {k: v for k, v in entry.items() if k not in _SETTING_KEYS} | inherited
            held.gpus.append((gpu, done))
            watts, mhz = wanted.power_limit_watts, wanted.sm_clock_mhz
            if watts is not None:
                _change(
                    done,
                    "original_power_limit_watts",
                    entry["original_power_limit_watts"],
                    functools.partial(gpu.set_power_limit_watts, watts),
                )
            if mhz is not None:
                _change(done, "sm_clocks_locked", True, functools.partial(gpu.lock_sm_clocks_mhz, mhz, mhz))
            held.record["gpus"][str(gpu.cuda_index)] = _gpu_record(gpu, entry, wanted)
    except BaseException:
        held.restore()
        raise
    return held


_SETTING_KEYS = ("original_power_limit_watts", "sm_clocks_locked")


def _claim(results_dir: Path, gpu: device.GPU, wanted: Wanted, me: dict) -> tuple[dict, dict]:
    """Write ``gpu``'s originals to disk under ``me`` (before anything changes); returns the entry and what a dead
    owner's entry for this GPU held (its changes are still in effect: they are restored with ours)."""
    entry: dict[str, Any] = {"uuid": gpu.uuid(), "nvml_index": gpu.nvml_index, "owner": me, "set_at": _now()}
    if wanted.power_limit_watts is not None:
        entry["original_power_limit_watts"] = gpu.power_management_limit_watts()
    if wanted.sm_clock_mhz is not None:
        entry["sm_clocks_locked"] = True
    inherited: dict[str, Any] = {}
    with _locked_state(results_dir) as entries:
        other = entries.get(entry["uuid"])
        if other is not None and other.get("owner") != me:
            if owner_alive(other.get("owner") or {}) is not False:
                who = other.get("owner") or {}
                raise SettingsHeld(
                    f"GPU {gpu.cuda_index} ({entry['uuid']}): its settings are held by process "
                    f"{who.get('pid')} on {who.get('host')} ({state_path(results_dir)})"
                )
            inherited = {key: other[key] for key in _SETTING_KEYS if key in other}
            entry.update(inherited)  # a dead owner's originals are the true ones
        entries[entry["uuid"]] = entry
    return entry, inherited


def _change(done: dict, key: str, original: Any, call: Callable[[], None]) -> None:
    """Make one change, noted in ``done`` first (a fault may have changed it); a refusal changed nothing."""
    done[key] = original
    try:
        call()
    except device.SettingRefused:
        del done[key]
        raise


def _gpu_record(gpu: device.GPU, entry: dict, wanted: Wanted) -> dict:
    """What run.json keeps of one GPU: its UUID, the original and the limit read back after setting, in watts."""
    out: dict[str, Any] = {"uuid": entry["uuid"]}
    if wanted.power_limit_watts is not None:
        out["original_power_limit_watts"] = entry.get("original_power_limit_watts")
        out["power_limit_watts"] = gpu.power_management_limit_watts()
        out["enforced_power_limit_watts"] = gpu.power_limit_watts()
    if wanted.sm_clock_mhz is not None:
        out["sm_clock_locked_mhz"] = [wanted.sm_clock_mhz, wanted.sm_clock_mhz]
    return out


def _restore_entry(gpu: device.GPU, entry: dict) -> str | None:
    """Put one GPU's originals back; a line saying what failed, or None."""
    failed = []
    if "original_power_limit_watts" in entry:
        try:
            gpu.set_power_limit_watts(entry["original_power_limit_watts"])
        except Exception as exc:  # noqa: BLE001 -- a refusal or a GPU fault: the entry stays for the next start
            failed.append(f"power limit {entry['original_power_limit_watts']:g} W ({exc})")
    if entry.get("sm_clocks_locked"):
        try:
            gpu.reset_sm_clocks()
        except Exception as exc:  # noqa: BLE001 -- as above
            failed.append(f"unlocking the SM clock ({exc})")
    if not failed:
        return None
    return f"GPU {entry['uuid']}: could not restore {'; '.join(failed)}; kept for the next start"


def restore_leftovers(results_dir: Path | str) -> list[str]:
    """Restore the settings a harness that is no longer alive left on this host's GPUs; one line per GPU
    restored or left as it is (and why). Entries of live processes and of other hosts are left alone."""
    if not state_path(results_dir).exists():
        return []
    lines = []
    with _locked_state(results_dir) as entries:
        for uuid, entry in list(entries.items()):
            alive = owner_alive(entry.get("owner") or {})
            if alive is not False:
                continue
            who = f"process {entry['owner'].get('pid')} (no longer running)"
            try:
                gpu = device.gpu_by_uuid(uuid)
            except device.NvmlUnavailable as exc:
                lines.append(f"GPU {uuid}: settings left by {who} not restored: {exc}")
                continue
            if gpu is None:
                lines.append(f"GPU {uuid}: settings left by {who} not restored: no such GPU on this host")
                continue
            problem = _restore_entry(gpu, entry)
            if problem:
                lines.append(problem + f" (left by {who})")
                continue
            del entries[uuid]
            what = (
                [f"power limit {entry['original_power_limit_watts']:g} W"]
                if "original_power_limit_watts" in entry
                else []
            )
            what += ["SM clock unlocked"] if entry.get("sm_clocks_locked") else []
            lines.append(f"GPU {uuid}: restored {', '.join(what)} left set by {who}")
    return lines
