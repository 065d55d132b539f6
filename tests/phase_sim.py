"""Simulated language-model runs whose GPU power follows known phase coefficients, read at the NVML fake boundary.

Used by tests/test_phases.py and benchmarks/phase_estimator.py. A continuous-batching scheduler (vLLM-like:
all requests submitted at once, at most ``max_num_seqs`` running, each step decodes one token for every
request past its prefill and spends the rest of a ``max_num_batched_tokens`` budget on chunked prefills)
produces every token's arrival time. Each step draws

    energy = idle_power x step time + (prefill_joules_per_token x prompt tokens prefilled in the step
                                        + decode_joules_per_token x tokens decoded in the step) x (1 + noise)

(noise: normal, ``noise_fraction`` standard deviation, per step), spread over the GPUs as a piecewise-constant
power trace that :class:`conftest.FakeGPU` replays. The harness then reads it as it reads a real GPU: the idle
power through :func:`harness.measuring.telemetry.measure_idle_power` before the run, and the timeline through
the sampler's NVML reader at ``sampler_hz`` with jittered tick times (a fake clock: no real time passes).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from conftest import FakeClock, FakeGPU

IDLE_S = 5.0  # idle before and after the run (measure_idle_power reads the first part)


@dataclass(frozen=True)
class SimulatedLoad:
    """One simulated run: the load, the engine's step times, the true coefficients and the sampler."""

    num_requests: int = 400
    max_num_seqs: int = 64
    prompt_mean_tokens: float = 800.0
    output_mean_tokens: float = 250.0
    max_num_batched_tokens: int = 2048
    step_base_s: float = 0.012
    step_per_sequence_s: float = 0.0001
    step_per_prefill_token_s: float = 0.00002
    idle_power_watts: float = 70.0  # per GPU
    prefill_joules_per_token: float = 0.02  # over all GPUs
    decode_joules_per_token: float = 0.12
    noise_fraction: float = 0.05
    sampler_hz: float = 10.0
    jitter_s: float = 0.004
    num_gpus: int = 1
    has_counter: bool = True
    seed: int = 0


@dataclass
class SimulatedRun:
    """What a run folder would hold: the timeline, the requests table, the steady window and the idle power."""

    load: SimulatedLoad
    timeline: pd.DataFrame
    requests: pd.DataFrame
    steady_start_s: float
    steady_end_s: float
    idle_power_watts: dict[int, float]  # per GPU, as measured by the harness
    metrics: dict = field(default_factory=dict)

    @property
    def idle_power_total_watts(self) -> float:
        return float(sum(self.idle_power_watts.values()))


class TraceGPU(FakeGPU):
    """FakeGPU with a prefix-summed trace: the counter of a long trace is read in O(log n)."""

    def __init__(self, trace, clock, **kwargs):
        super().__init__(trace, clock=clock, **kwargs)
        spans = np.diff(np.asarray([*self.times, self.times[-1]]))
        self._cumulative = np.concatenate([[0.0], np.cumsum(np.asarray(self.watts) * spans)])

    def energy_joules_between(self, a: float, b: float) -> float:
        return self._energy_until(b) - self._energy_until(a)

    def _energy_until(self, t: float) -> float:
        if t <= self.times[0]:
            return 0.0
        i = bisect.bisect_right(self.times, t) - 1
        if i >= len(self.times) - 1:  # the last point holds for ever
            return float(self._cumulative[-2] + self.watts[-1] * (t - self.times[-1]))
        return float(self._cumulative[i] + self.watts[i] * (t - self.times[i]))


def schedule(load: SimulatedLoad, t0: float, rng: np.random.Generator):
    """(requests, steps): every request's token times and every step's (start, end, prefill, decoded tokens)."""
    from harness.workloads.base import RequestRecord

    prompts = np.maximum(8, rng.lognormal(np.log(load.prompt_mean_tokens) - 0.32, 0.8, load.num_requests)).astype(int)
    outputs = np.maximum(2, rng.lognormal(np.log(load.output_mean_tokens) - 0.32, 0.8, load.num_requests)).astype(int)
    waiting = list(range(load.num_requests))
    running: list[int] = []
    prefilled = np.zeros(load.num_requests, dtype=int)
    times: list[list[float]] = [[] for _ in range(load.num_requests)]
    steps = []
    t = t0
    while waiting or running:
        while waiting and len(running) < load.max_num_seqs:
            running.append(waiting.pop(0))
        budget = load.max_num_batched_tokens
        decoding = [r for r in running if prefilled[r] >= prompts[r]]
        budget -= len(decoding)
        chunks = {}
        for r in running:
            if prefilled[r] < prompts[r] and budget > 0:
                take = int(min(prompts[r] - prefilled[r], budget))
                chunks[r] = take
                budget -= take
        prefill_tokens = sum(chunks.values())
        dt = (
            load.step_base_s + load.step_per_sequence_s * len(decoding) + load.step_per_prefill_token_s * prefill_tokens
        )
        t_end = t + dt
        for r in decoding:
            times[r].append(t_end)
        for r, take in chunks.items():
            prefilled[r] += take
            if prefilled[r] >= prompts[r]:
                times[r].append(t_end)  # the first token comes out of the step that finishes the prefill
        steps.append((t, t_end, prefill_tokens, len(decoding)))
        running = [r for r in running if len(times[r]) < outputs[r]]
        t = t_end
    requests = [
        RequestRecord(
            request_id=i,
            prompt_tokens=int(prompts[i]),
            target_output_tokens=int(outputs[i]),
            output_tokens=int(outputs[i]),
            submit_time_s=t0,
            first_token_time_s=times[i][0],
            finish_time_s=times[i][-1],
            token_times_s=times[i],
        )
        for i in range(load.num_requests)
    ]
    return requests, steps


def power_traces(load: SimulatedLoad, steps, rng: np.random.Generator, t_start: float) -> list[list[tuple]]:
    """One piecewise-constant trace per GPU: idle, the run's steps, idle again."""
    traces: list[list[tuple]] = [[(t_start, load.idle_power_watts)] for _ in range(load.num_gpus)]
    for a, b, prefill, decoded in steps:
        dynamic = load.prefill_joules_per_token * prefill + load.decode_joules_per_token * decoded
        dynamic *= max(0.0, 1.0 + load.noise_fraction * rng.standard_normal())
        shares = rng.dirichlet(np.full(load.num_gpus, 50.0)) if load.num_gpus > 1 else [1.0]
        for g in range(load.num_gpus):
            traces[g].append((a, load.idle_power_watts + dynamic * shares[g] / (b - a)))
    end = steps[-1][1]
    for g in range(load.num_gpus):
        traces[g].append((end, load.idle_power_watts))
    return traces


def simulate(load: SimulatedLoad, install) -> SimulatedRun:
    """Run ``load`` against fake GPUs installed with ``install(gpus)`` (the tests' ``fake_nvml`` fixture or the
    benchmarks' context manager); returns what the harness would have stored."""
    from harness.measuring import steady
    from harness.measuring.telemetry import (
        COLUMNS,
        NVML_COLUMNS,
        NvmlReader,
        measure_idle_power,
    )

    rng = np.random.default_rng(load.seed)
    clock = FakeClock(1_000_000.0)
    t_start = clock.t
    run_start = t_start + IDLE_S
    requests, steps = schedule(load, run_start, rng)
    traces = power_traces(load, steps, rng, t_start)
    gpus = [TraceGPU(trace, clock) for trace in traces]
    if not load.has_counter:
        for gpu in gpus:
            gpu.counter_mj = _no_counter
    install(gpus)
    idle = measure_idle_power(
        IDLE_S - 1.0, gpu_indices=list(range(load.num_gpus)), hz=load.sampler_hz, sleep=clock.advance, clock=clock
    )
    reader = NvmlReader(list(range(load.num_gpus)))
    assert reader.available, reader.problem
    run_end = steps[-1][1]
    rows = []
    k = 0
    blank = (None,) * (len(COLUMNS) - 3 - len(NVML_COLUMNS))
    while True:
        tick = run_start - 0.5 + k / load.sampler_hz + rng.uniform(-load.jitter_s, load.jitter_s)
        if tick > run_end + 0.5:
            break
        clock.t = tick
        for g in range(load.num_gpus):
            rows.append((tick, "nvml", g, *reader.sample(g), *blank))
        k += 1
    timeline = pd.DataFrame(rows, columns=list(COLUMNS))
    timeline["gpu_index"] = timeline["gpu_index"].astype("Int64")
    for column in COLUMNS[3:]:
        timeline[column] = pd.to_numeric(timeline[column]).astype("float64")
    metrics, request_rows = steady.llm_metrics(requests, {}, load.max_num_seqs)
    return SimulatedRun(
        load,
        timeline,
        pd.DataFrame(request_rows),
        metrics["steady_start_time_s"],
        metrics["steady_end_time_s"],
        idle,
        metrics,
    )


def _no_counter():
    import pynvml

    raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
