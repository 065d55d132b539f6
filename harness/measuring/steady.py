"""Steady-state windows, per-output energy and validity flags.

LLM runs submit all N requests at once and the engine admits at most
M = ``max_num_seqs``. The steady state opens when M requests have received
their first token and closes when the requests still unfinished can no longer
fill the batch: at the (N - M + 1)-th finish, when only M - 1 remain.

Online, a backend feeds events to a :class:`~harness.measuring.windows.SteadyTracker`
(the window trackers live in :mod:`harness.measuring.windows`), which opens and
closes the meter's ``"steady"`` window at those moments::

    tracker = SteadyTracker.for_meter(meter, cfg.max_num_seqs, num_requests)
    ...  tracker.first_token(t)   # when a request's first token arrives (t = time.time() of that token)
    ...  tracker.finished(t)      # when a request finishes, succeeded or failed

After the run, :func:`steady_bounds` replays the same events through the same
state machine (:func:`harness.measuring.windows.replay_bounds`), so the post-hoc
bounds equal the online ones; a load at a rate or at a fixed concurrency has its
own window (:mod:`harness.measuring.arrivals`). A run stopped early
by adaptive stopping (:mod:`harness.measuring.adaptive`) closes the window with
``tracker.stop_early(t)``; the replay is then given ``stop_time_s=t``.
Tokens are counted inside the measured window (``start < t <= end``), and

* energy per token = window GPU energy (summed over GPUs) / output tokens in the window;
* energy per request = energy per token x that request's output tokens
  (the run's ``energy_per_output_joules``, per response, uses the mean output length; the tidy table
  repeats it as ``energy_per_request_joules``, the reference's name);
* diffusion: energy per image or video = mean iteration energy / batch size;
* TTFT (``mean_ttft_ms``, ``median_ttft_ms``, ``p90_ttft_ms``, ``p99_ttft_ms``): submit to first
  token of every request that succeeded, over the whole run (not only the steady window).

:func:`validity` turns the metrics into ``is_stable`` / ``unstable_reason``
with the reference's checks: steady state at least 20 s (GPU hosts), average
running batch / M at least 0.85, average power per GPU between its idle power
and its power limit, and at least 75% of the expected telemetry samples.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from harness.measuring.adaptive import is_stopped
from harness.measuring.arrivals import Arrival
from harness.measuring.arrivals import steady_bounds as arrival_bounds
from harness.measuring.goodput import goodput_metrics
from harness.measuring.node import node_metrics
from harness.measuring.windows import Request, RequestEvents, SteadyTracker, replay_bounds

if TYPE_CHECKING:
    from harness.measuring.energy import WindowMeasurement

MIN_STEADY_S = 20.0
MIN_SATURATION = 0.85
MIN_COVERAGE = 0.75
# Instability codes that also rule out larger batch sizes of the same series (the reference's rule).
BATCH_CODES = ("no-steady-state", "steady-duration", "batch-saturation")


def steady_bounds(
    requests: Sequence[RequestEvents], max_num_seqs: int, stop_time_s: float | None = None
) -> tuple[float, float] | None:
    """Times (seconds) at which the steady state opened and closed, or None if it never did: the requests'
    events replayed through a :class:`SteadyTracker` (:func:`harness.measuring.windows.replay_bounds`).

    ``stop_time_s``: the run was stopped early then (adaptive stopping); later events are ignored
    and a window still open closes at that time.
    """
    if not requests:
        return None
    return replay_bounds(SteadyTracker(max_num_seqs, len(requests)), requests, stop_time_s)


class Iteration(Protocol):
    """One timed diffusion generation as the measuring code reads it
    (:class:`harness.workloads.base.IterationRecord`)."""

    @property
    def index(self) -> int: ...

    @property
    def start_time_s(self) -> float: ...

    @property
    def end_time_s(self) -> float: ...

    @property
    def batch_size(self) -> int: ...

    @property
    def outputs(self) -> int: ...  # images or videos produced


def token_times(r: Request) -> list[float]:
    """Arrival time (seconds) of every output token; spread evenly from first token to finish if not recorded."""
    if r.token_times_s:
        return list(r.token_times_s)
    n = r.output_tokens
    if n <= 0 or r.first_token_time_s is None:
        return []
    if n == 1 or r.finish_time_s is None:
        return [r.first_token_time_s]
    step = (r.finish_time_s - r.first_token_time_s) / (n - 1)
    return [r.first_token_time_s + k * step for k in range(n)]


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    pos = (len(values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def llm_metrics(
    requests: Sequence[Request],
    windows: Mapping[str, WindowMeasurement],
    max_num_seqs: int,
    stop_time_s: float | None = None,
    load: dict | None = None,
) -> tuple[dict, list[dict]]:
    """Run summary and per-request rows for an LLM run (times in seconds, energy in joules, the column names
    say the rest: ``energy_per_token_joules``, ``avg_power_watts``, ``median_itl_ms``, ...).

    ``windows`` maps names to WindowMeasurement; the ``"steady"`` one gives the energy. Without it the
    event bounds are used for times and tokens, and energy is null.

    ``stop_time_s``: the run was stopped early by adaptive stopping at that time. Requests cut short
    then are counted in ``num_stopped_requests`` (not failed), and ``avg_output_len`` (hence energy
    per request) is the mean *planned* output length of the requests that did not fail: the ones
    that finished are biased toward short outputs.

    ``load``: the arrival pattern and latency targets of the run (``info["load"]`` of the endpoint backend):
    the steady window is the pattern's (:mod:`harness.measuring.arrivals`), batch saturation is relative to
    the batch the pattern can fill, and the goodput columns (:mod:`harness.measuring.goodput`) are added.
    """
    arrival = None
    if load and load.get("pattern", "all-at-once") != "all-at-once":
        arrival = Arrival.from_info(load)
        bounds = arrival_bounds(requests, arrival, max_num_seqs, stop_time_s)
    else:
        bounds = steady_bounds(requests, max_num_seqs, stop_time_s)
    window = windows.get("steady")
    ok = [r for r in requests if r.success]
    stopped = [r for r in requests if is_stopped(r)]
    if stopped:
        planned = [r.target_output_tokens for r in requests if r.success or is_stopped(r)]
        avg_len = statistics.fmean(planned) if planned else None
    else:
        avg_len = statistics.fmean(r.output_tokens for r in ok) if ok else None
    metrics: dict = {
        "num_requests": len(requests),
        "num_failed_requests": len(requests) - len(ok) - len(stopped),
        "num_stopped_requests": len(stopped),
        "total_output_tokens": int(sum(r.output_tokens for r in requests)),
        "avg_output_len": avg_len,
        "steady_open_time_s": bounds[0] if bounds else None,
        "steady_close_time_s": bounds[1] if bounds else None,
        "energy_source": window.energy_source if window else "none: no steady-state window was measured",
    }
    start: float | None
    end: float | None
    if window is not None:
        start, end = window.start_time_s, window.end_time_s
    elif bounds is not None:
        start, end = bounds
    else:
        start = end = None
    times = {r.request_id: token_times(r) for r in requests}
    in_window = {
        rid: sum(1 for t in ts if start < t <= end) if start is not None and end is not None else 0
        for rid, ts in times.items()
    }
    tokens = sum(in_window.values())
    duration = (end - start) if start is not None and end is not None else None
    energy = window.total_gpu_energy_joules if window is not None else None
    ept = energy / tokens if energy is not None and tokens > 0 else None
    itls = []
    for ts in times.values():
        for a, b in itertools.pairwise(ts):
            if start is None or end is None or start < b <= end:
                itls.append((b - a) * 1000.0)
    ttfts = [
        (r.first_token_time_s - r.submit_time_s) * 1000.0
        for r in requests
        if r.success and r.first_token_time_s is not None and r.submit_time_s is not None
    ]
    busy = 0.0
    if duration and start is not None and end is not None:  # a duration has both bounds
        for r in requests:
            if r.first_token_time_s is None:
                continue
            stop = r.finish_time_s if r.finish_time_s is not None else end
            busy += max(0.0, min(stop, end) - max(r.first_token_time_s, start))
    avg_batch = busy / duration if duration else None
    metrics.update(
        {
            "steady_start_time_s": start,
            "steady_end_time_s": end,
            "steady_duration_s": duration,
            "steady_output_tokens": tokens,
            "gpu_energy_joules": energy,
            "energy_per_token_joules": ept,
            # per response (an LLM task's output): the mean output length's worth; the tidy table also names it
            # energy_per_request_joules, as the reference does (harness.measuring.store), so the record keeps it once
            "energy_per_output_joules": ept * avg_len if ept is not None and avg_len is not None else None,
            "avg_power_watts": energy / duration if energy is not None and duration else None,
            "output_throughput_tokens_per_sec": tokens / duration if duration else None,
            "avg_batch_size": avg_batch,
            "batch_saturation": (
                avg_batch / (arrival.effective_batch(max_num_seqs) if arrival else max_num_seqs)
                if avg_batch is not None
                else None
            ),
            "median_itl_ms": _percentile(itls, 0.5),
            "p90_itl_ms": _percentile(itls, 0.9),
            "p95_itl_ms": _percentile(itls, 0.95),
            "p99_itl_ms": _percentile(itls, 0.99),
            # time to first token of every request that succeeded (submit to first token), whole run
            "mean_ttft_ms": statistics.fmean(ttfts) if ttfts else None,
            "median_ttft_ms": _percentile(ttfts, 0.5),
            "p90_ttft_ms": _percentile(ttfts, 0.9),
            "p99_ttft_ms": _percentile(ttfts, 0.99),
        }
    )
    metrics.update(
        node_metrics(
            [window] if window else [], energy, duration, tokens=tokens, outputs=tokens / avg_len if avg_len else None
        )
    )  # CPU and DRAM beside the GPU
    if load:
        metrics["arrival_pattern"] = load.get("pattern", "all-at-once")
        metrics.update(goodput_metrics(requests, load, start, end, metrics["energy_per_output_joules"]))
    rows = []
    for r in requests:
        rows.append(
            {
                "request_id": r.request_id,
                "prompt_tokens": r.prompt_tokens,
                "target_output_tokens": r.target_output_tokens,
                "output_tokens": r.output_tokens,
                "submit_time_s": r.submit_time_s,
                "first_token_time_s": r.first_token_time_s,
                "finish_time_s": r.finish_time_s,
                "success": r.success,
                "error": r.error,
                "steady_output_tokens": in_window[r.request_id],
                "energy_per_request_joules": ept * r.output_tokens if ept is not None else None,
                "token_times_s": list(r.token_times_s),
            }
        )
    return metrics, rows


def diffusion_metrics(
    iterations: Sequence[Iteration], windows: Mapping[str, WindowMeasurement], output_unit: str
) -> tuple[dict, list[dict]]:
    """Run summary and per-iteration rows; window ``iter-<index>`` measures iteration ``index``
    (``batch_latency_s`` in seconds, energy in joules, ``energy_per_<output_unit>_joules`` per image or video)."""
    rows, energies, durations, measured = [], [], [], []
    source = "none: no iteration window was measured"
    for it in sorted(iterations, key=lambda i: i.index):
        window = windows.get(f"iter-{it.index}")
        energy = window.total_gpu_energy_joules if window else None
        duration = window.duration_s if window else it.end_time_s - it.start_time_s
        if window:
            source = window.energy_source
            measured.append(window)
        energies.append(energy)
        durations.append(duration)
        rows.append(
            {
                "index": it.index,
                "start_time_s": it.start_time_s,
                "end_time_s": it.end_time_s,
                "batch_size": it.batch_size,
                "outputs": it.outputs,
                "duration_s": duration,
                "energy_joules": energy,
                f"energy_per_{output_unit}_joules": energy / it.batch_size if energy is not None else None,
            }
        )
    known = bool(energies) and all(e is not None for e in energies)
    joules = [e for e in energies if e is not None]  # all the energies where known
    batch = iterations[0].batch_size if iterations else None
    latency = statistics.fmean(durations) if durations else None
    per_output = (
        statistics.fmean(e / b for e, b in zip(joules, (i.batch_size for i in iterations), strict=False))
        if known
        else None
    )
    gpu_joules = sum(joules) if known else None
    metrics = {
        "num_iterations": len(iterations),
        "batch_size": batch,
        "batch_latency_s": latency,
        "gpu_energy_joules": gpu_joules,
        "avg_power_watts": sum(joules) / sum(durations) if known and sum(durations) > 0 else None,
        "throughput_outputs_per_sec": batch / latency if latency and batch is not None else None,
        f"energy_per_{output_unit}_joules": per_output,
        "energy_per_output_joules": per_output,
        "energy_source": source,
        "steady_start_time_s": min((it.start_time_s for it in iterations), default=None),
        "steady_end_time_s": max((it.end_time_s for it in iterations), default=None),
    }
    every = len(measured) == len(iterations)  # CPU and DRAM beside the GPU, over the same iterations
    metrics.update(
        node_metrics(
            measured if every else [], gpu_joules, sum(durations), outputs=sum(it.batch_size for it in iterations)
        )
    )
    return metrics, rows


def validity(
    metrics: dict,
    *,
    is_llm: bool,
    on_gpu: bool,
    max_num_seqs: int | None = None,
    num_gpus: int = 1,
    idle_power_watts: Iterable[float] = (),
    power_limit_watts: Iterable[float] = (),
    coverage: float | None = None,
    sampler_errors: int = 0,
) -> tuple[bool, str, list[str]]:
    """``(is_stable, unstable_reason, failed_check_codes)``.

    The reason lists failed checks first, then the checks that were not applied and why (a run on
    the CPU is stable with a reason that says which checks did not apply).
    """
    failed: list[tuple[str, str]] = []
    notes: list[str] = []
    if is_llm:
        duration = metrics.get("steady_duration_s")
        if duration is None or metrics.get("steady_open_time_s") is None:
            failed.append(
                ("no-steady-state", f"no steady state: max_num_seqs={max_num_seqs} requests never ran together")
            )
        else:
            if on_gpu and duration < MIN_STEADY_S:
                failed.append(("steady-duration", f"steady state lasted {duration:.1f} s (< {MIN_STEADY_S:g} s)"))
            saturation = metrics.get("batch_saturation")
            if metrics.get("arrival_pattern") == "poisson":  # at a rate the batch is what the load makes it
                notes.append("batch-saturation check not applied to a load at a rate (poisson arrivals)")
            elif saturation is not None and saturation < MIN_SATURATION:
                failed.append(("batch-saturation", f"batch saturation {saturation:.2f} (< {MIN_SATURATION})"))
        if not on_gpu:
            notes.append(f"steady-state >= {MIN_STEADY_S:g} s rule not applied on a CPU host")
    power = metrics.get("avg_power_watts")
    if not on_gpu:
        notes.append(f"energy checks skipped (energy is null: {metrics.get('energy_source')})")
    elif power is None:
        failed.append(("energy-missing", f"no GPU energy ({metrics.get('energy_source')})"))
    else:
        per_gpu = power / max(1, num_gpus)
        idle = [p for p in idle_power_watts if p is not None]
        limits = [p for p in power_limit_watts if p is not None]
        floor = statistics.fmean(idle) if idle else 0.0
        if per_gpu <= floor:
            failed.append(("power-range", f"average power {per_gpu:.1f} W per GPU is not above idle ({floor:.1f} W)"))
        elif limits and per_gpu > min(limits):
            failed.append(
                ("power-range", f"average power {per_gpu:.1f} W per GPU exceeds the power limit ({min(limits):.0f} W)")
            )
        if not idle:
            notes.append("idle power unknown: power only checked against 0 W")
    if coverage is None:
        notes.append("telemetry coverage not checked (window shorter than 10 samples)")
    elif coverage < MIN_COVERAGE:
        failed.append(("telemetry-coverage", f"telemetry coverage {coverage:.0%} (< {MIN_COVERAGE:.0%})"))
    if sampler_errors:
        failed.append(("telemetry-errors", f"telemetry sampler raised {sampler_errors} time(s)"))
    reason = "; ".join([text for _, text in failed] + notes)
    return not failed, reason, [code for code, _ in failed]
