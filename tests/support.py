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
