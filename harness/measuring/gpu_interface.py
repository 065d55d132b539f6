"""The vendor-neutral GPU interface: the :class:`GPU` contract every device implementation fulfils, with the errors
its readings and setters raise (:class:`ReadingUnsupported`, :class:`SettingRefused`).

No vendor library here: :mod:`harness.measuring.device` implements the interface over NVML (the one module that
imports ``pynvml``) and re-exports these names, so ``from harness.measuring.device import GPU`` keeps working.
"""

from __future__ import annotations

import abc

from harness.errors import HarnessError


class ReadingUnsupported(HarnessError):
    """This GPU or its driver has no such reading (NVML's not-supported or function-not-found)."""


class SettingRefused(HarnessError):
    """The driver refused to change a GPU setting; ``reason`` is ``"no-permission"`` (NVML_ERROR_NO_PERMISSION:
    the process may not set it), ``"not-supported"`` or ``"invalid-argument"`` (a value out of range)."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class GPU(abc.ABC):
    """One visible GPU, in CUDA's numbering. Readings raise :class:`ReadingUnsupported` where this GPU or
    driver lacks them, and the vendor library's own error on any other fault."""

    def __init__(self, cuda_index: int, nvml_index: int, entry: str, mig: bool = False):
        self.cuda_index = cuda_index  # 0.. in the order CUDA numbers the visible devices
        self.nvml_index = nvml_index  # the physical index NVML uses (what Zeus expects)
        self.entry = entry  # the CUDA_VISIBLE_DEVICES item it came from ("" when the variable is unset)
        self.mig = mig  # a MIG slice: readings are the whole GPU's that holds it (memory total is the slice's)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(cuda_index={self.cuda_index}, nvml_index={self.nvml_index}, "
            f"entry={self.entry!r}, mig={self.mig})"
        )

    @abc.abstractmethod
    def name(self) -> str:
        """The product name, e.g. ``"NVIDIA H100 80GB HBM3"``."""

    @abc.abstractmethod
    def uuid(self) -> str:
        """The GPU's UUID (``"GPU-..."``)."""

    @abc.abstractmethod
    def memory_total_bytes(self) -> int | None:
        """Device memory in bytes (a MIG slice's own), or None when it cannot be read."""

    @abc.abstractmethod
    def memory_used_bytes(self) -> int:
        """Device memory in use, in bytes."""

    @abc.abstractmethod
    def power_usage_watts(self) -> float:
        """Power draw in watts as the driver reports it (a 1-second average on Ampere and newer)."""

    @abc.abstractmethod
    def instant_power_watts(self) -> float | None:
        """Instantaneous power draw in watts, or None where the driver does not give it."""

    @abc.abstractmethod
    def energy_millijoules(self) -> int | None:
        """The cumulative energy counter in millijoules (since the driver loaded), or None on GPUs without one."""

    @abc.abstractmethod
    def power_limit_watts(self) -> float | None:
        """The enforced power limit in watts, or None when it cannot be read."""

    @abc.abstractmethod
    def utilization_percent(self) -> float:
        """Share of the last sample period in which a kernel ran, in percent (0..100)."""

    @abc.abstractmethod
    def sm_clock_mhz(self) -> float:
        """The current SM clock in MHz."""

    @abc.abstractmethod
    def temperature_celsius(self) -> float:
        """The GPU die temperature in degrees Celsius."""

    @abc.abstractmethod
    def throttle_reasons(self) -> int:
        """The current clock-event (throttle) reasons, the driver's bitmask."""

    # settings a run may change (harness.measuring.gpu_settings keeps the originals on disk)

    @abc.abstractmethod
    def power_limit_range_watts(self) -> tuple[float, float]:
        """The lowest and the highest power limit in watts this GPU accepts (the driver's constraints)."""

    @abc.abstractmethod
    def power_management_limit_watts(self) -> float:
        """The power limit in watts set on this GPU now (what :meth:`set_power_limit_watts` changes; the
        enforced limit, :meth:`power_limit_watts`, may be lower where another limit applies)."""

    @abc.abstractmethod
    def default_power_limit_watts(self) -> float:
        """The power limit in watts this GPU has out of the box."""

    @abc.abstractmethod
    def set_power_limit_watts(self, watts: float) -> None:
        """Set the power limit, in watts (whole milliwatts). Raises :class:`SettingRefused` where the driver
        refuses (no permission, not supported, out of range)."""

    @abc.abstractmethod
    def supported_sm_clocks_mhz(self) -> list[int]:
        """The SM (graphics) clocks in MHz this GPU can be locked to at its highest memory clock, ascending."""

    @abc.abstractmethod
    def lock_sm_clocks_mhz(self, low_mhz: int, high_mhz: int) -> None:
        """Lock the SM clock between ``low_mhz`` and ``high_mhz`` (MHz). Raises :class:`SettingRefused`."""

    @abc.abstractmethod
    def reset_sm_clocks(self) -> None:
        """Unlock the SM clock (the driver's own clock management again). Raises :class:`SettingRefused`."""
