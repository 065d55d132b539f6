"""Small helpers that several test modules import (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from harness.workloads.base import WindowMeasurement

# The published reference data: HARNESS_REFERENCE_DIR when set, else the copy beside the checkout
# (../shared/..., the layout .ci/run uses). Tests that need it skip when neither exists.
REFERENCE_DIR = Path(
    os.environ.get("HARNESS_REFERENCE_DIR")
    or Path(__file__).resolve().parents[2] / "shared" / "reference" / "mlenergy-leaderboard-v3" / "public" / "data"
)


class RecordingMeter:
    """A Meter without energy: records window events and wall-clock bounds (backend tests)."""

    def __init__(self):
        self.open, self.windows, self.events = {}, {}, []

    def begin(self, name):
        self.events.append(("begin", name))
        self.open[name] = time.time()

    def end(self, name, sync=True):
        self.events.append(("end", name))
        w = WindowMeasurement(name, self.open.pop(name), time.time(), {}, {}, {}, "none: test meter")
        self.windows[name] = w
        return w


def llm_configuration(**over):
    """A tiny-llama chat configuration on the vLLM backend (the tests' fake server serves it); ``over`` replaces
    fields of it (``backend="transformers"``, ``num_requests=6``, ``options={...}``)."""
    from harness.config import configuration_from_dict

    base = dict(
        study="s",
        task="lm-arena-chat",
        family="llm-chat",
        backend="vllm",
        model="tiny-llama",
        num_gpus=1,
        tensor_parallel=1,
        expert_parallel=1,
        precision="bfloat16",
        max_num_seqs=2,
        max_num_batched_tokens=8192,
        batch_size=None,
        inference_steps=None,
        height=None,
        width=None,
        num_frames=None,
        num_requests=4,
        num_iterations=None,
        seed=0,
        length_source=None,
        max_output_tokens=8,
        options={},
    )
    return configuration_from_dict(base | over)
