"""A trivial CPU workload shaped like an LLM run: the whole harness path in a second or two.

All ``num_requests`` fake requests are submitted at once; a scheduler loop
admits at most ``max_num_seqs`` of them (continuous batching: a finished
request's slot is refilled in the same step) and, once per step, gives every
running request one output token after a small deterministic CPU job (sha256
rounds). Output lengths are drawn from ``random.Random(seed)``. The meter's
``"steady"`` window is opened and closed by :class:`harness.measuring.steady.SteadyTracker`,
exactly as the LLM backends do; ``"run"`` covers the whole load. The run honours
``stop: adaptive`` through :class:`harness.measuring.adaptive.AdaptiveStopper` (polled after
every step): requests still open when it stops are recorded as stopped.

Options (``options:`` in the config): :data:`OPTION_TABLE`, with their types, defaults and meanings; the
fault injection options are for tests.
"""

from __future__ import annotations

import hashlib
import random
import time
from pathlib import Path

from harness.config import Configuration
from harness.measuring import adaptive
from harness.measuring.steady import SteadyTracker
from harness.workloads.base import LoggingBackend, Meter, RequestRecord, StampClock, WorkloadError, WorkloadResult
from harness.workloads.options import Opt, defaults

OPTION_TABLE = {
    "step_s": Opt(
        "number", minimum=0, default=0.002, doc="seconds per decode step, so tokens arrive at 1 / step_s per request"
    ),
    "min_output_tokens": Opt("int", minimum=1, default=4, doc="shortest drawn output, in tokens"),
    "max_output_tokens": Opt(
        "int",
        minimum=1,
        default=32,
        doc="longest drawn output, in tokens (default: the block's max_output_tokens, else 32)",
    ),
    "work_rounds": Opt("int", minimum=0, default=20, doc="sha256 rounds per token (the CPU work)"),
    "fail_cause": Opt(
        "string",
        doc="fault injection: runs with max_num_seqs >= fail_from_max_num_seqs raise "
        "WorkloadError with this cause (e.g. oom)",
    ),
    "fail_from_max_num_seqs": Opt("int", minimum=1, default=1, doc="fault injection: the smallest batch that fails"),
    "fail_after_requests": Opt(
        "int", minimum=0, default=0, doc="fault injection: requests finished before the failure"
    ),
}
OPTIONS = defaults(OPTION_TABLE)  # views of the table for the study reader (harness.config)
OPTION_SPECS = OPTION_TABLE


class TrivialBackend(LoggingBackend):
    """Backend ``trivial``: see the module docstring."""

    name = "trivial"
    tasks = ("cpu-trivial",)
    option_table = OPTION_TABLE
    metrics_url = None

    def __init__(self) -> None:
        self.log_path: Path | None = None
        self.options: dict = {}

    @classmethod
    def known_models(cls, task: str | None = None) -> tuple[str, ...]:
        """The one model the trivial workload knows, for any task."""
        return ("cpu-spin",)

    def start(self, cfg: Configuration, run_dir: Path) -> None:
        """Check the options and open the run log; nothing else to build."""
        self.options = self.resolve_options(cfg)
        if cfg.max_output_tokens is not None and "max_output_tokens" not in cfg.options:
            self.options["max_output_tokens"] = cfg.max_output_tokens
        self.log_path = Path(run_dir) / "server.log"
        self._log(f"trivial server up: model={cfg.model} max_num_seqs={cfg.max_num_seqs} options={self.options}")

    def run(self, cfg: Configuration, meter: Meter) -> WorkloadResult:
        """Serve the fake requests, one token per running request per ``step_s`` seconds."""
        opt = self.options
        rng = random.Random(cfg.seed)
        n, m = cfg.knob("num_requests"), cfg.knob("max_num_seqs")
        lo, hi = int(opt["min_output_tokens"]), max(int(opt["min_output_tokens"]), int(opt["max_output_tokens"]))
        submit = time.time()
        requests = [
            RequestRecord(
                request_id=i,
                prompt_tokens=rng.randint(8, 64),
                target_output_tokens=rng.randint(lo, hi),
                output_tokens=0,
                submit_time_s=submit,
                first_token_time_s=None,
                finish_time_s=None,
            )
            for i in range(n)
        ]
        fail = opt["fail_cause"] is not None and m >= int(opt["fail_from_max_num_seqs"])
        tracker = SteadyTracker.for_meter(meter, m, n)
        stopper = adaptive.for_run(cfg, meter, tracker)
        digest = hashlib.sha256(cfg.model.encode())
        stamp = StampClock()  # strictly increasing, so online and post-hoc event order agree

        waiting = list(range(n))[::-1]
        running: list[int] = []
        finished = 0
        meter.begin("run")
        step_s = float(opt["step_s"])
        deadline = time.monotonic()
        while waiting or running:
            if fail and finished >= int(opt["fail_after_requests"]):
                self._log(f"error: injected failure {opt['fail_cause']} at max_num_seqs={m}")
                raise WorkloadError(
                    f"injected failure ({opt['fail_cause']}) at max_num_seqs={m}",
                    log_tail=self.log_tail(),
                    cause=str(opt["fail_cause"]),
                )
            while waiting and len(running) < m:
                running.append(waiting.pop())
            batch = list(running)
            for rid in batch:  # grows while iterating: an admitted request gets its first token this step
                r = requests[rid]
                for _ in range(int(opt["work_rounds"])):
                    digest.update(digest.digest())
                t = stamp()
                r.token_times_s.append(t)
                r.output_tokens += 1
                stopper.tokens(1)
                if r.first_token_time_s is None:
                    r.first_token_time_s = t
                    tracker.first_token(t)
                if r.output_tokens >= r.target_output_tokens:
                    r.finish_time_s = t
                    running.remove(rid)
                    finished += 1
                    tracker.finished(t)
                    if waiting:  # refill the slot at once, like continuous batching
                        running.append(waiting[-1])
                        batch.append(waiting.pop())
            if stopper.poll():
                break
            deadline += step_s
            pause = deadline - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        meter.end("run")
        stopped = adaptive.mark_stopped(requests, stopper.stop_time_s)
        self._log(
            f"served {n - stopped} requests, {sum(r.output_tokens for r in requests)} tokens"
            + (f"; stopped early (adaptive): {stopped} requests cut short" if stopped else "")
        )
        return WorkloadResult(
            requests=requests,
            server_log=self.log_path,
            info={
                "digest": digest.hexdigest()[:16],
                "options": dict(opt),
                "steady_bounds_online": tracker.bounds,
                "stop": stopper.summary(),
            },
        )

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of the run log."""
        return super().log_tail(lines)

    def stop(self) -> None:
        """Log the stop; nothing to release."""
        self._log("trivial server stopped")
