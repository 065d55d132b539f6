"""A sweep's outcome: one summary line per status and cause, and whether the sweep failed.

The reference's method expects some runs not to give a figure: a batch that runs out of memory, a run that
never reaches a steady state, larger batches skipped after those. Such runs are measured outcomes, and a
sweep that has them succeeds (exit status 0). A run that failed for a reason of setup -- the configuration,
an option, the published reference data, a missing engine, a server that cannot be reached or refuses the
key -- measured nothing about the hardware: the sweep exits non-zero (:data:`SETUP_EXIT_STATUS`), so that
``make measure && make book`` stops there, and the run is measured again by the next ``measure`` (its folder
moved to ``<study>/.replaced/``), once the cause is fixed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SETUP_CAUSES = frozenset(
    {
        "bad-config",  # the configuration (a model, a length source, a context too short)
        "bad-option",  # an option the backend refuses
        "reference-unavailable",  # the published reference data cannot be read here
        "no-engine",  # the serving engine's environment is missing
        "unreachable",  # the existing server does not answer
        "unauthorized",  # the existing server refuses the key
        "model-not-served",  # the existing server does not serve that model
        "remote-refused",  # a server on another host without allow_remote
        "unsupported",  # a backend cannot run this precision or device
        "insufficient-gpus",  # fewer GPUs than the configuration needs
    }
)
SETUP_EXIT_STATUS = 1
SETUP_FAILED = "setup-failed"  # the state of a stored run that failed for a reason of setup: measured again


def is_setup_failure(record: dict | None) -> bool:
    """True for a run record that failed for a reason of setup (:data:`SETUP_CAUSES`)."""
    return record is not None and record.get("status") == "failed" and record.get("cause") in SETUP_CAUSES


def retry_state(state: str, record: dict | None) -> str:
    """The stored state, or :data:`SETUP_FAILED` for a failed run whose cause was setup (measured again)."""
    return SETUP_FAILED if state == "failed" and is_setup_failure(record) else state


def _cause_key(record: dict) -> str | None:
    """What groups a run in the summary: its cause, except a skip, whose reason names its own run."""
    status, cause = record.get("status"), record.get("cause")
    if status == "skipped":
        return "a smaller batch of its series ran out of memory or was unstable"
    if status == "ok":
        return None if record.get("is_stable", True) else f"unstable: {record.get('unstable_reason')}"
    return cause


@dataclass
class Outcome:
    """The runs of one sweep by (status, cause), with the first message of each group (a failure's)."""

    groups: dict[tuple[str, str | None], int] = field(default_factory=dict)
    messages: dict[tuple[str, str | None], str] = field(default_factory=dict)

    def add(self, record: dict) -> None:
        """Count one finished run's record (run.json)."""
        key = (str(record.get("status")), _cause_key(record))
        self.groups[key] = self.groups.get(key, 0) + 1
        if record.get("message") and key not in self.messages:
            self.messages[key] = str(record["message"]).splitlines()[0]

    @property
    def setup_failures(self) -> int:
        """Runs of this sweep that failed for a reason of setup."""
        return sum(n for (status, cause), n in self.groups.items() if status == "failed" and cause in SETUP_CAUSES)

    def lines(self) -> list[str]:
        """One line per status and cause: ``failed (reference-unavailable): 6 runs -- setup: <first message>``."""
        out = []
        for (status, cause), n in sorted(self.groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
            head = f"{status} ({cause})" if cause else status
            line = f"{head}: {n} run{'s' if n != 1 else ''}"
            if status == "failed":
                kind = "setup, nothing measured" if cause in SETUP_CAUSES else "measured outcome"
                message = self.messages.get((status, cause))
                line += f" -- {kind}" + (f": {message}" if message else "")
            out.append(line)
        return out

    def verdict(self) -> str | None:
        """The sweep's last line when it failed for a reason of setup, else None."""
        n = self.setup_failures
        if not n:
            return None
        return (
            f"sweep failed: {n} run{'s' if n != 1 else ''} failed for a reason of setup (see above); fix it and "
            f"run the same command again (those runs are measured again)"
        )
