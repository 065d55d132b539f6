"""A file-backed fake of NVML's power-limit and clock calls (test_gpu_settings.py, test_power_knobs.py).

The GPUs' settings live in a JSON file, read at every call and replaced atomically at every change, so they
persist across processes as a real GPU's do: a subprocess that sets a limit and is SIGKILLed leaves it set, and
the next process sees it. ``install(setattr)`` replaces pynvml's functions (``monkeypatch.setattr`` in a test,
plain ``setattr`` in a subprocess); ``devices=False`` leaves device enumeration to another fake (conftest's
FakeNVML, whose handles carry ``.uuid``) and adds only the settings calls.

    spec = FakeSettings.create(tmp_path / "gpus.json", count=2, root=True)
    spec.install(monkeypatch.setattr)
    spec.gpu(0)["limit_mw"]                     # 700000
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

H100 = {
    "name": "NVIDIA H100 80GB HBM3",
    "limit_mw": 700_000,
    "default_mw": 700_000,
    "min_mw": 200_000,
    "max_mw": 700_000,
    "locked": None,
    "memory_clocks": [2619, 1593],
    "graphics_clocks": list(range(345, 1981, 15)),
}


class FakeSettings:
    def __init__(self, path: Path | str):
        self.path = Path(path)

    @classmethod
    def create(
        cls, path: Path | str, count: int = 1, root: bool = True, uuids: list[str] | None = None, **overrides
    ) -> FakeSettings:
        gpus = [dict(H100, uuid=(uuids or [])[i] if uuids else f"GPU-fake-{i:04d}", **overrides) for i in range(count)]
        fake = cls(path)
        fake.write({"root": root, "gpus": gpus, "calls": []})
        return fake

    def read(self) -> dict:
        return json.loads(self.path.read_text())

    def write(self, state: dict) -> None:
        tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.path)

    def gpu(self, index: int) -> dict:
        return self.read()["gpus"][index]

    def set_root(self, root: bool) -> None:
        state = self.read()
        state["root"] = root
        self.write(state)

    def calls(self) -> list[list]:
        """Every setter call so far: ``[name, uuid, *args]``."""
        return self.read()["calls"]

    def install(self, setattr, devices: bool = True) -> None:
        import pynvml

        def error(code):
            return pynvml.NVMLError(code)

        def uuid_of(handle):
            return handle.uuid

        def find(state, handle):
            for gpu in state["gpus"]:
                if gpu["uuid"] == uuid_of(handle):
                    return gpu
            raise error(pynvml.NVML_ERROR_NOT_FOUND)

        def getter(key):
            return lambda handle: find(self.read(), handle)[key]

        def setter(name, change):
            def call(handle, *args):
                state = self.read()
                gpu = find(state, handle)
                if not state["root"]:
                    raise error(pynvml.NVML_ERROR_NO_PERMISSION)
                change(gpu, *args)
                state["calls"].append([name, gpu["uuid"], *args])
                self.write(state)

            return call

        def set_limit(gpu, milliwatts):
            if not gpu["min_mw"] <= milliwatts <= gpu["max_mw"]:
                raise error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            gpu["limit_mw"] = int(milliwatts)

        def lock(gpu, low, high):
            clocks = gpu["graphics_clocks"]
            if low > high or low < clocks[0] or high > clocks[-1]:
                raise error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            gpu["locked"] = [int(low), int(high)]

        def unlock(gpu):
            gpu["locked"] = None

        def graphics_clocks(handle, memory_mhz):
            gpu = find(self.read(), handle)
            if memory_mhz not in gpu["memory_clocks"]:
                raise error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
            return list(reversed(gpu["graphics_clocks"]))  # NVML lists them highest first

        def enforced(handle):
            gpu = find(self.read(), handle)
            return gpu["limit_mw"]

        fakes = {
            "nvmlDeviceGetPowerManagementLimitConstraints": lambda h: [getter("min_mw")(h), getter("max_mw")(h)],
            "nvmlDeviceGetPowerManagementLimit": getter("limit_mw"),
            "nvmlDeviceGetPowerManagementDefaultLimit": getter("default_mw"),
            "nvmlDeviceGetEnforcedPowerLimit": enforced,
            "nvmlDeviceSetPowerManagementLimit": setter("set_limit", set_limit),
            "nvmlDeviceGetSupportedMemoryClocks": getter("memory_clocks"),
            "nvmlDeviceGetSupportedGraphicsClocks": graphics_clocks,
            "nvmlDeviceSetGpuLockedClocks": setter("lock_clocks", lock),
            "nvmlDeviceResetGpuLockedClocks": setter("reset_clocks", unlock),
        }
        if devices:

            def handles():
                return [SimpleNamespace(uuid=g["uuid"], index=i) for i, g in enumerate(self.read()["gpus"])]

            def by_index(i):
                found = handles()
                if not 0 <= i < len(found):
                    raise error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
                return found[i]

            def by_uuid(uuid):
                for handle in handles():
                    if handle.uuid == uuid:
                        return handle
                raise error(pynvml.NVML_ERROR_NOT_FOUND)

            def memory(handle):
                return SimpleNamespace(total=80 * 2**30, used=0, free=80 * 2**30)

            fakes.update(
                {
                    "nvmlInit": lambda: None,
                    "nvmlShutdown": lambda: None,
                    "nvmlDeviceGetCount": lambda: len(self.read()["gpus"]),
                    "nvmlDeviceGetHandleByIndex": by_index,
                    "nvmlDeviceGetHandleByUUID": by_uuid,
                    "nvmlDeviceGetIndex": lambda h: h.index,
                    "nvmlDeviceGetUUID": uuid_of,
                    "nvmlDeviceGetName": lambda h: find(self.read(), h)["name"],
                    "nvmlDeviceGetMemoryInfo": memory,
                }
            )
        for name, fn in fakes.items():
            setattr(pynvml, name, fn)
