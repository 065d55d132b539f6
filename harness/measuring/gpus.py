"""Which GPUs this process sees, in CUDA's numbering: the one reading of ``CUDA_VISIBLE_DEVICES``.

    from harness.measuring.gpus import visible_gpus
    gpus = visible_gpus(pynvml)       # [VisibleGPU(cuda_index=0, nvml_index=3, ...), ...]

``CUDA_VISIBLE_DEVICES`` is read as CUDA reads it:

* unset: every GPU NVML lists;
* empty (``""``): no GPU at all;
* a comma-separated list of NVML indices (``2,3``), GPU UUIDs (``GPU-8f6c...``, also a unique
  prefix of one, as Slurm and Kubernetes set them) or MIG ids (``MIG-<uuid>``, or the older
  ``MIG-GPU-<uuid>/<gi>/<ci>``); CUDA stops at the first entry it cannot resolve, so do we.

A MIG slice has no energy counter of its own: it maps to the GPU that holds it (``mig=True``), and
energy read there is the whole GPU's. Zeus 0.16 parses the variable with ``int()`` and refuses UUIDs
and MIG ids; :func:`nvml_indices_env` gives the value to hand it instead (the NVML indices).
Only this module and :mod:`harness.measuring.telemetry` call ``pynvml``; tests fake its functions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

ENV = "CUDA_VISIBLE_DEVICES"


@dataclass(frozen=True)
class VisibleGPU:
    cuda_index: int  # 0.. in the order CUDA numbers the visible devices
    nvml_index: int  # the physical index NVML uses (what Zeus expects)
    handle: object
    entry: str  # the CUDA_VISIBLE_DEVICES item it came from ("" when the variable is unset)
    mig: bool = False
    slice_handle: object = None  # the MIG device's own handle (its memory is the slice's), when known


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _by_uuid_prefix(pynvml, prefix: str):
    """The handle whose UUID starts with ``prefix`` (unique), else None."""
    found = []
    for i in range(pynvml.nvmlDeviceGetCount()):
        handle = pynvml.nvmlDeviceGetHandleByIndex(i)
        try:
            uuid = _text(pynvml.nvmlDeviceGetUUID(handle))
        except pynvml.NVMLError:
            continue
        if uuid.startswith(prefix):
            found.append(handle)
    return found[0] if len(found) == 1 else None


def _resolve(pynvml, item: str):
    """``(handle, mig, slice_handle)`` of one CUDA_VISIBLE_DEVICES entry, or None when CUDA cannot resolve it."""
    if item.isdigit():
        index = int(item)
        if index >= pynvml.nvmlDeviceGetCount():
            return None
        return pynvml.nvmlDeviceGetHandleByIndex(index), False, None
    if item.startswith("MIG-"):
        rest = item[len("MIG-"):]
        parent = mig = None
        if rest.startswith("GPU-"):  # MIG-GPU-<uuid>/<gi>/<ci> (drivers before R470)
            parent = _by_uuid_prefix(pynvml, rest.split("/", 1)[0])
        else:
            try:
                mig = pynvml.nvmlDeviceGetHandleByUUID(item)
                parent = pynvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(mig)
            except pynvml.NVMLError:
                parent = None
        return (parent, True, mig) if parent is not None else None
    uuid = item if item.startswith("GPU-") else f"GPU-{item}"
    try:
        return pynvml.nvmlDeviceGetHandleByUUID(uuid), False, None
    except pynvml.NVMLError:
        handle = _by_uuid_prefix(pynvml, uuid)
        return (handle, False, None) if handle is not None else None


def visible_gpus(pynvml) -> list[VisibleGPU]:
    """The GPUs this process sees (``pynvml.nvmlInit()`` already called); [] for ``CUDA_VISIBLE_DEVICES=""``."""
    value = os.environ.get(ENV)
    if value is None:
        return [VisibleGPU(i, i, pynvml.nvmlDeviceGetHandleByIndex(i), "")
                for i in range(pynvml.nvmlDeviceGetCount())]
    out: list[VisibleGPU] = []
    for item in (v.strip() for v in value.split(",")):
        resolved = _resolve(pynvml, item) if item else None
        if resolved is None:  # CUDA ignores this entry and every one after it
            break
        handle, mig, slice_handle = resolved
        out.append(VisibleGPU(len(out), _nvml_index(pynvml, handle), handle, item, mig, slice_handle))
    return out


def _nvml_index(pynvml, handle) -> int:
    try:
        return int(pynvml.nvmlDeviceGetIndex(handle))
    except (pynvml.NVMLError, AttributeError, TypeError):
        for i in range(pynvml.nvmlDeviceGetCount()):
            if pynvml.nvmlDeviceGetHandleByIndex(i) is handle:
                return i
        raise


def empty_problem() -> str | None:
    """Why no GPU is visible because of the variable itself (``CUDA_VISIBLE_DEVICES=""``), else None."""
    value = os.environ.get(ENV)
    if value is not None and not value.strip():
        return f'{ENV}="" hides every GPU'
    return None


def nvml_indices_env(gpus: list[VisibleGPU]) -> str | None:
    """The ``CUDA_VISIBLE_DEVICES`` to show Zeus (NVML indices, comma-separated), or None to leave it as is."""
    if os.environ.get(ENV) is None:
        return None
    return ",".join(str(g.nvml_index) for g in gpus)


def memory_total_bytes(pynvml, gpu: VisibleGPU) -> int | None:
    try:
        return int(pynvml.nvmlDeviceGetMemoryInfo(gpu.slice_handle or gpu.handle).total)
    except pynvml.NVMLError:
        return None


def describe_env() -> str:
    value = os.environ.get(ENV)
    return f"{ENV} unset" if value is None else f"{ENV}={value!r}"
