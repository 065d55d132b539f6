"""Where the GPU check writes what is not a result: one temporary folder, removed when the check ends.

On a borrowed check machine whatever lies outside the output folder is lost, and on a shared one it is litter,
so ``scripts/gpu-check`` keeps everything else in one scratch folder (under the system's temporary folder) that
it removes on the way out, whatever the environment said before: the generated model and tokenizer folders
(``HARNESS_CACHE_DIR``, else ``~/.cache/joules-study/models``), the caches of Hugging Face, Torch Inductor,
Triton, CUDA's JIT and pip, the carried wheels' site folder, and every temporary file (``TMPDIR``)::

    with scratch_space() as scratch:
        ...   # the check; os.environ names folders under scratch.root
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# Environment variable -> sub-folder of the scratch folder. Each is read by a library the check may import:
# set before the first import (huggingface_hub reads HF_HOME at import time).
SCRATCH_DIRS = {
    "HARNESS_CACHE_DIR": "harness",  # generated model and tokenizer folders (harness.workloads.archs)
    "XDG_CACHE_HOME": "cache",  # everything that follows the XDG convention (pip's cache among them)
    "HF_HOME": "huggingface",
    "TORCHINDUCTOR_CACHE_DIR": "torchinductor",
    "TRITON_HOME": "triton-home",  # Triton's ~/.triton
    "TRITON_CACHE_DIR": "triton-cache",
    "TORCH_HOME": "torch",
    "TORCH_EXTENSIONS_DIR": "torch-extensions",
    "CUDA_CACHE_PATH": "cuda-compute-cache",  # CUDA's JIT cache, else ~/.nv/ComputeCache
    "MPLCONFIGDIR": "matplotlib",
    "PIP_CACHE_DIR": "pip",
    "TMPDIR": "tmp",  # Python's tempfile and every child process
}


@dataclass(frozen=True)
class Scratch:
    """The scratch folder (``root``) and the environment variables pointed into it."""

    root: Path
    env: dict[str, str]


@contextmanager
def scratch_space(parent: Path | None = None) -> Iterator[Scratch]:
    """A fresh scratch folder under ``parent`` (default: the system's temporary folder) with
    :data:`SCRATCH_DIRS` pointed into it, for the duration of the block; afterwards the environment and
    :mod:`tempfile`'s folder are as before and the scratch folder is gone."""
    root = Path(tempfile.mkdtemp(prefix="gpu-check-scratch-", dir=parent))
    env = {name: str(root / sub) for name, sub in SCRATCH_DIRS.items()}
    for path in env.values():
        Path(path).mkdir()
    before = {name: os.environ.get(name) for name in env}
    tempdir_before = tempfile.tempdir
    os.environ.update(env)
    tempfile.tempdir = env["TMPDIR"]
    try:
        yield Scratch(root=root, env=env)
    finally:
        tempfile.tempdir = tempdir_before
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(root, ignore_errors=True)
