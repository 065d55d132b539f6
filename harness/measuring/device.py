"""The one door to the GPUs: every NVML call of the harness goes through this module.

    from harness.measuring import device
    device.nvml_problem()              # None, or why NVML cannot be used here ("nvidia-ml-py is not installed", ...)
    gpus = device.visible_gpus()       # [NvidiaGPU(cuda_index=0, nvml_index=3, ...), ...] in CUDA's numbering
    gpus[0].power_usage_watts()        # 312.5
    gpus[0].energy_millijoules()       # NVML's cumulative counter; None on GPUs without one

As in Zeus' device layer, the rest of the harness sees one small interface, :class:`GPU` (defined in
:mod:`harness.measuring.gpu_interface`, re-exported here with its errors), with one implementation per
vendor (:class:`NvidiaGPU`, over ``pynvml`` from nvidia-ml-py) and a factory, :func:`visible_gpus`. Every reading is a typed method whose docstring states its unit. A reading this GPU
or driver does not have raises :class:`ReadingUnsupported`; any other fault of the device raises NVML's
own error unchanged (:func:`is_fault` tells one). The settings a run may change (the power limit, locked
SM clocks) have setters beside the readings, the same NVML calls Zeus' GPU API makes; a refusal of the
driver raises :class:`SettingRefused` with its reason (``no-permission`` for NVML_ERROR_NO_PERMISSION).
:mod:`harness.measuring.gpu_settings` keeps the original values on disk and restores them. Nothing else in the harness imports ``pynvml``; tests
replace ``pynvml``'s functions with a fake device (``tests/conftest.py``), which this module and Zeus
then call as they would the real library.

Which GPUs a process sees follows ``CUDA_VISIBLE_DEVICES`` as CUDA reads it:

* unset: every GPU NVML lists;
* empty (``""``): no GPU at all;
* a comma-separated list of NVML indices (``2,3``), GPU UUIDs (``GPU-8f6c...``, also a unique
  prefix of one, as Slurm and Kubernetes set them) or MIG ids (``MIG-<uuid>``, or the older
  ``MIG-GPU-<uuid>/<gi>/<ci>``); CUDA stops at the first entry it cannot resolve, so do we.

A MIG slice has no energy counter of its own: it maps to the GPU that holds it (``mig=True``), and
energy read there is the whole GPU's. Zeus 0.16 parses the variable with ``int()`` and refuses UUIDs
and MIG ids; :func:`nvml_indices_env` gives the value to hand it instead (the NVML indices).
"""  # noqa: E501

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from harness.errors import HarnessError
from harness.measuring.gpu_interface import GPU, ReadingUnsupported, SettingRefused

__all__ = [
    "ENV",
    "GPU",
    "NvidiaGPU",
    "NvmlUnavailable",
    "ReadingUnsupported",
    "SettingRefused",
    "cuda_driver_version",
    "describe_env",
    "driver_version",
    "empty_problem",
    "gpu_by_uuid",
    "is_fault",
    "nvml_indices_env",
    "nvml_problem",
    "visible_gpus",
]

ENV = "CUDA_VISIBLE_DEVICES"


class NvmlUnavailable(HarnessError):
    """NVML cannot be used on this host (no nvidia-ml-py, no driver, no library); the message says which."""


# --- NVIDIA, through NVML ---------------------------------------------------------------------------


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _absent_codes(nvml: Any) -> tuple:
    """NVML errors that mean "this driver or GPU has no such reading" (not a fault)."""
    return tuple(
        getattr(nvml, name)
        for name in ("NVML_ERROR_NOT_SUPPORTED", "NVML_ERROR_FUNCTION_NOT_FOUND")
        if hasattr(nvml, name)
    )


class NvidiaGPU(GPU):
    """A GPU read through NVML (``pynvml``, looked up at each call so that a faked module is used)."""

    def __init__(
        self,
        nvml: Any,
        cuda_index: int,
        nvml_index: int,
        handle: object,
        entry: str,
        mig: bool = False,
        slice_handle: object = None,
    ):
        super().__init__(cuda_index, nvml_index, entry, mig)
        self._nvml, self._handle = nvml, handle
        self._slice_handle = slice_handle  # the MIG device's own handle (its memory is the slice's), when known
        self._chosen: dict[str, str] = {}  # reading -> the NVML function that works on this driver

    def _reading(self, call: Callable[[], Any]) -> Any:
        """``call()``, with NVML's "no such reading" errors raised as :class:`ReadingUnsupported`."""
        nvml = self._nvml
        try:
            return call()
        except nvml.NVMLError as exc:
            if getattr(exc, "value", None) in _absent_codes(nvml):
                raise ReadingUnsupported(f"GPU {self.cuda_index}: {exc}") from exc
            raise

    def _first_available(self, what: str, names: tuple[str, ...], *args: Any) -> Any:
        """The first of several NVML functions (in order of preference) this driver has, remembered.

        A function missing from the Python binding or raising NVMLError_FunctionNotFound (an older driver)
        moves on to the next; when none is left, the last not-found error propagates.
        """
        nvml = self._nvml
        chosen = self._chosen.get(what)
        error = None
        for name in (n for n in names if chosen is None or n == chosen):
            fn = getattr(nvml, name, None)
            if fn is None:
                continue
            try:
                value = fn(self._handle, *args)
            except nvml.NVMLError as exc:
                if getattr(exc, "value", None) != getattr(nvml, "NVML_ERROR_FUNCTION_NOT_FOUND", object()):
                    raise
                error = exc
                continue
            self._chosen[what] = name
            return value
        raise error if error is not None else nvml.NVMLError(nvml.NVML_ERROR_FUNCTION_NOT_FOUND)

    def name(self) -> str:
        return _text(self._nvml.nvmlDeviceGetName(self._handle))

    def uuid(self) -> str:
        return _text(self._nvml.nvmlDeviceGetUUID(self._handle))

    def memory_total_bytes(self) -> int | None:
        try:
            return int(self._nvml.nvmlDeviceGetMemoryInfo(self._slice_handle or self._handle).total)
        except self._nvml.NVMLError:
            return None

    def memory_used_bytes(self) -> int:
        return int(self._reading(lambda: self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used))

    def power_usage_watts(self) -> float:
        return self._reading(lambda: self._nvml.nvmlDeviceGetPowerUsage(self._handle)) / 1000.0

    def instant_power_watts(self) -> float | None:
        nvml = self._nvml
        try:
            value = nvml.nvmlDeviceGetFieldValues(self._handle, [nvml.NVML_FI_DEV_POWER_INSTANT])[0]
        except Exception:  # noqa: BLE001 -- an old binding or driver without the field: no instantaneous power
            return None
        if value.nvmlReturn != nvml.NVML_SUCCESS:
            return None
        return float(value.value.uiVal) / 1000.0  # the field is in milliwatts

    def energy_millijoules(self) -> int | None:
        try:
            return self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
        except self._nvml.NVMLError:  # pre-Volta GPUs have no counter
            return None

    def power_limit_watts(self) -> float | None:
        try:
            return self._nvml.nvmlDeviceGetEnforcedPowerLimit(self._handle) / 1000.0
        except self._nvml.NVMLError:
            return None

    def utilization_percent(self) -> float:
        return float(self._reading(lambda: self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu))

    def sm_clock_mhz(self) -> float:
        return float(self._reading(lambda: self._nvml.nvmlDeviceGetClockInfo(self._handle, self._nvml.NVML_CLOCK_SM)))

    def temperature_celsius(self) -> float:
        # nvmlDeviceGetTemperature is deprecated; newer bindings add nvmlDeviceGetTemperatureV
        return float(
            self._reading(
                lambda: self._first_available(
                    "temperature",
                    ("nvmlDeviceGetTemperature", "nvmlDeviceGetTemperatureV"),
                    self._nvml.NVML_TEMPERATURE_GPU,
                )
            )
        )

    def throttle_reasons(self) -> int:
        return int(
            self._reading(
                lambda: self._first_available(
                    "reasons", ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons")
                )
            )
        )

    # settings: NVML's setters need root (or the admin's leave); their refusals become SettingRefused

    def _setting(self, what: str, call: Callable[[], Any]) -> Any:
        """``call()``, with NVML's refusals raised as :class:`SettingRefused` naming ``what`` and why."""
        nvml = self._nvml
        try:
            return call()
        except nvml.NVMLError as exc:
            code = getattr(exc, "value", None)
            reasons = {
                getattr(nvml, "NVML_ERROR_NO_PERMISSION", None): "no-permission",
                getattr(nvml, "NVML_ERROR_INVALID_ARGUMENT", None): "invalid-argument",
            }
            reason = reasons.get(code) or ("not-supported" if code in _absent_codes(nvml) else None)
            if reason is None:
                raise
            why = {
                "no-permission": "this process may not (NVML_ERROR_NO_PERMISSION; setting it needs root)",
                "invalid-argument": f"the driver refused the value ({exc})",
                "not-supported": f"not supported on this GPU ({exc})",
            }[reason]
            raise SettingRefused(
                f"GPU {self.cuda_index} ({self.entry or self.nvml_index}): cannot {what}: {why}", reason
            ) from exc

    def power_limit_range_watts(self) -> tuple[float, float]:
        low, high = self._reading(lambda: self._nvml.nvmlDeviceGetPowerManagementLimitConstraints(self._handle))
        return low / 1000.0, high / 1000.0

    def power_management_limit_watts(self) -> float:
        return self._reading(lambda: self._nvml.nvmlDeviceGetPowerManagementLimit(self._handle)) / 1000.0

    def default_power_limit_watts(self) -> float:
        return self._reading(lambda: self._nvml.nvmlDeviceGetPowerManagementDefaultLimit(self._handle)) / 1000.0

    def set_power_limit_watts(self, watts: float) -> None:
        milliwatts = round(watts * 1000)
        self._setting(
            f"set the power limit to {watts:g} W",
            lambda: self._nvml.nvmlDeviceSetPowerManagementLimit(self._handle, milliwatts),
        )

    def supported_sm_clocks_mhz(self) -> list[int]:
        nvml = self._nvml
        memory = self._reading(lambda: nvml.nvmlDeviceGetSupportedMemoryClocks(self._handle))
        if not memory:
            return []
        clocks = self._reading(lambda: nvml.nvmlDeviceGetSupportedGraphicsClocks(self._handle, max(memory)))
        return sorted(int(c) for c in clocks)

    def lock_sm_clocks_mhz(self, low_mhz: int, high_mhz: int) -> None:
        self._setting(
            f"lock the SM clock to {low_mhz}..{high_mhz} MHz",
            lambda: self._nvml.nvmlDeviceSetGpuLockedClocks(self._handle, int(low_mhz), int(high_mhz)),
        )

    def reset_sm_clocks(self) -> None:
        self._setting("unlock the SM clock", lambda: self._nvml.nvmlDeviceResetGpuLockedClocks(self._handle))


# --- the factory: which GPUs this process sees --------------------------------------------------------


def _by_uuid_prefix(nvml: Any, prefix: str) -> object | None:
    """The handle whose UUID starts with ``prefix`` (unique), else None."""
    found = []
    for i in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(i)
        try:
            uuid = _text(nvml.nvmlDeviceGetUUID(handle))
        except nvml.NVMLError:
            continue
        if uuid.startswith(prefix):
            found.append(handle)
    return found[0] if len(found) == 1 else None


def _resolve(nvml: Any, item: str) -> tuple[object, bool, object] | None:
    """``(handle, mig, slice_handle)`` of one CUDA_VISIBLE_DEVICES entry, or None when CUDA cannot resolve it."""
    if item.isdigit():
        index = int(item)
        if index >= nvml.nvmlDeviceGetCount():
            return None
        return nvml.nvmlDeviceGetHandleByIndex(index), False, None
    if item.startswith("MIG-"):
        rest = item[len("MIG-") :]
        parent = mig = None
        if rest.startswith("GPU-"):  # MIG-GPU-<uuid>/<gi>/<ci> (drivers before R470)
            parent = _by_uuid_prefix(nvml, rest.split("/", 1)[0])
        else:
            try:
                mig = nvml.nvmlDeviceGetHandleByUUID(item)
                parent = nvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(mig)
            except nvml.NVMLError:
                parent = None
        return (parent, True, mig) if parent is not None else None
    uuid = item if item.startswith("GPU-") else f"GPU-{item}"
    try:
        return nvml.nvmlDeviceGetHandleByUUID(uuid), False, None
    except nvml.NVMLError:
        handle = _by_uuid_prefix(nvml, uuid)
        return (handle, False, None) if handle is not None else None


def _nvml_index(nvml: Any, handle: object) -> int:
    try:
        return int(nvml.nvmlDeviceGetIndex(handle))
    except (nvml.NVMLError, AttributeError, TypeError):
        for i in range(nvml.nvmlDeviceGetCount()):
            if nvml.nvmlDeviceGetHandleByIndex(i) is handle:
                return i
        raise


def _visible(nvml: Any) -> list[NvidiaGPU]:
    """The GPUs this process sees (NVML initialised); [] for ``CUDA_VISIBLE_DEVICES=""``."""
    value = os.environ.get(ENV)
    if value is None:
        return [NvidiaGPU(nvml, i, i, nvml.nvmlDeviceGetHandleByIndex(i), "") for i in range(nvml.nvmlDeviceGetCount())]
    out: list[NvidiaGPU] = []
    for item in (v.strip() for v in value.split(",")):
        resolved = _resolve(nvml, item) if item else None
        if resolved is None:  # CUDA ignores this entry and every one after it
            break
        handle, mig, slice_handle = resolved
        out.append(NvidiaGPU(nvml, len(out), _nvml_index(nvml, handle), handle, item, mig, slice_handle))
    return out


def visible_gpus() -> list[GPU]:
    """The GPUs this process sees, in CUDA's numbering; [] for ``CUDA_VISIBLE_DEVICES=""``.

    Raises :class:`NvmlUnavailable` (the message says why) where NVML cannot be used.
    """
    try:
        import pynvml
    except ImportError as exc:
        raise NvmlUnavailable("nvidia-ml-py is not installed") from exc
    try:
        pynvml.nvmlInit()
        return list(_visible(pynvml))
    except pynvml.NVMLError as exc:
        raise NvmlUnavailable(f"NVML: {exc}") from exc


def gpu_by_uuid(uuid: str) -> GPU | None:
    """The GPU with this UUID among all NVML lists, whatever ``CUDA_VISIBLE_DEVICES`` shows (None when this
    host has no such GPU; ``cuda_index`` is then its NVML index). Raises :class:`NvmlUnavailable` without NVML."""

    def find(nvml: Any) -> GPU | None:
        try:
            handle = nvml.nvmlDeviceGetHandleByUUID(uuid)
            index = _nvml_index(nvml, handle)
        except nvml.NVMLError:
            return None
        return NvidiaGPU(nvml, index, index, handle, uuid)

    return _system(find)


def nvml_problem() -> str | None:
    """Why NVML cannot be used on this host, or None when it can."""
    try:
        import pynvml
    except ImportError:
        return "nvidia-ml-py is not installed"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return f"NVML: {exc}"
    try:
        count = pynvml.nvmlDeviceGetCount()
        if not count:
            return "NVML found no devices"
        empty = empty_problem()
        if empty:
            return empty
        if not _visible(pynvml):
            return f"no GPU of the {count} NVML lists matches {describe_env()}"
    except pynvml.NVMLError as exc:
        return f"NVML: {exc}"
    return None


def is_fault(exc: BaseException) -> bool:
    """Whether ``exc`` is the vendor library's own error (a GPU fault), as readings raise it."""
    try:
        import pynvml
    except ImportError:
        return False
    return isinstance(exc, pynvml.NVMLError)


def driver_version() -> str:
    """The NVIDIA driver's version, e.g. ``"580.65.06"``. Raises :class:`NvmlUnavailable` without NVML."""
    return _text(_system(lambda nvml: nvml.nvmlSystemGetDriverVersion()))


def cuda_driver_version() -> str:
    """The CUDA version the driver supports, ``"<major>.<minor>"`` (e.g. ``"13.0"``)."""
    cuda = _system(lambda nvml: nvml.nvmlSystemGetCudaDriverVersion())
    return f"{cuda // 1000}.{cuda % 1000 // 10}"


def _system(call: Callable[[Any], Any]) -> Any:
    """``call(pynvml)`` with NVML initialised; :class:`NvmlUnavailable` where it cannot be."""
    try:
        import pynvml
    except ImportError as exc:
        raise NvmlUnavailable("nvidia-ml-py is not installed") from exc
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        raise NvmlUnavailable(f"NVML: {exc}") from exc
    return call(pynvml)


# --- CUDA_VISIBLE_DEVICES -------------------------------------------------------------------------------


def empty_problem() -> str | None:
    """Why no GPU is visible because of the variable itself (``CUDA_VISIBLE_DEVICES=""``), else None."""
    value = os.environ.get(ENV)
    if value is not None and not value.strip():
        return f'{ENV}="" hides every GPU'
    return None


def nvml_indices_env(gpus: list[GPU]) -> str | None:
    """The ``CUDA_VISIBLE_DEVICES`` to show Zeus (NVML indices, comma-separated), or None to leave it as is."""
    if os.environ.get(ENV) is None:
        return None
    return ",".join(str(g.nvml_index) for g in gpus)


def describe_env() -> str:
    """``CUDA_VISIBLE_DEVICES`` as a phrase for messages (``"CUDA_VISIBLE_DEVICES='0,1'"`` or ``"... unset"``)."""
    value = os.environ.get(ENV)
    return f"{ENV} unset" if value is None else f"{ENV}={value!r}"
