"""A study file read against the backends this harness has: the configuration reader and the workloads'
catalogue joined (the reader sits below the backends, so it is handed what they offer)."""

from __future__ import annotations

from pathlib import Path

from harness import config
from harness.workloads import registry


def load_study(path: str | Path) -> config.Study:
    """Read and validate a study config (:func:`harness.config.load_study`) against every backend here.

    Raises :class:`harness.errors.ConfigError` naming the file and field; writes nothing.
    """
    return config.load_study(path, registry.catalogue())
