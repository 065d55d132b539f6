"""Mutation score of the core measuring and analysis code (``make mutation``): mutmut, one module at a time.

    .venv/bin/python benchmarks/mutation.py [--module NAME ...] [--max-children N] [--survivors] [--report-only]

For each module below, ``mutmut run`` (configuration: ``[tool.mutmut]`` of pyproject.toml) makes small changes
to the code, one at a time (a ``<`` for a ``<=``, a constant off by one, a string changed, a call's argument
dropped), and runs the tests of the selection that cover the changed function; a change that no test notices
*survives*. The score of a module is killed / (total - equivalent): an *equivalent* mutant changes nothing a
caller can see, and :data:`EQUIVALENT` says why for each one counted so. Results go to
``benchmarks/results/mutation.json``: killed and total per module, and every survivor with its change.
``--report-only`` rewrites that file from the last runs (``mutants/``) without running anything.

The scope, as issue 25 names it: the windows (steady.py, arrivals.py), energy.py, validator.py, fidelity.py,
the findings' computations (the ten findings and their tables in the findings package's language.py,
generation.py, serving.py and hardware.py, and the entry points _tables, compute and compute_all of its
__init__.py; not its record, wording or framework-graph modules, nor the command line) and the factor attribution
(tables/attribution.py).
"""

from __future__ import annotations

import argparse
import difflib
import fnmatch
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _common  # noqa: E402

ROOT = _common.ROOT
MUTMUT = Path(sys.executable).with_name("mutmut")
GOAL = 0.80

# The findings package's modules whose functions compute the ten findings and their tables (all their functions),
# and the entry points of its __init__; not its record, wording or framework-graph modules, nor the command line
FINDING_MODULES = ("language", "generation", "serving", "hardware")
FINDING_ENTRY_POINTS = ("_tables", "compute", "compute_all")

# name -> (source files, mutant name patterns, what is in scope)
MODULES: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "energy": (("harness/measuring/energy.py",), ("harness.measuring.energy.*",), "the whole module"),
    "validator": (("harness/measuring/validator.py",), ("harness.measuring.validator.*",), "the whole module"),
    "arrivals": (("harness/measuring/arrivals.py",), ("harness.measuring.arrivals.*",), "the whole module"),
    "steady": (("harness/measuring/steady.py",), ("harness.measuring.steady.*",), "the whole module"),
    "fidelity": (
        ("harness/measuring/fidelity.py", "harness/measuring/energy_timeline.py"),
        ("harness.measuring.fidelity.*", "harness.measuring.energy_timeline.*"),
        "the whole module, and the energy timeline it reads (energy_timeline.py)",
    ),
    "factors": (
        ("harness/analysis/tables/attribution.py",),
        ("harness.analysis.tables.attribution.*",),
        (
            "the factor attribution: the whole of tables/attribution.py (Factor, Attribution, attribute, diagnose "
            "and their helpers)"
        ),
    ),
    "findings": (
        (*(f"harness/analysis/findings/{m}.py" for m in FINDING_MODULES), "harness/analysis/findings/__init__.py"),
        (
            *(f"harness.analysis.findings.{m}.*" for m in FINDING_MODULES),
            *(f"harness.analysis.findings.x_{f}__mutmut_*" for f in FINDING_ENTRY_POINTS),
        ),
        (
            "the ten findings and their tables (findings/language.py, generation.py, serving.py, hardware.py, "
            "whole) and the entry points _tables, compute and compute_all of findings/__init__.py"
        ),
    ),
}

# mutmut's exit codes of a mutant's test run, read as outcomes
KILLED = {1, 3, 24, -24, 36, 37, 152, 255}  # a test failed, pytest broke, or the tests ran out of time
OUTCOME = {0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", None: "not checked"}

# Mutants that change nothing a caller can see, and why (counted out of the score's denominator): name ->
# (the mutated line as mutmut writes it, why it is equivalent). A mutant counts as equivalent only while its change
# is still that line (mutmut numbers a function's mutants in order: an edit to the function renumbers them).
_DEFAULT_SOURCE = (
    "a GPU missing from the power sources reads the default source; any default that does not start with "
    "nvml/power-instant sorts its readings the same way"
)
_ALL_AT_ONCE = (
    "an all-at-once load read through the arrival path gets the same window (Arrival() is all-at-once and"
    " its tracker is SteadyTracker) and the same batch (effective_batch is max_num_seqs)"
)
_ABSENT_DEFAULT = (
    "an absent option then reads None instead of its default, and the Arrival is built with the same default "
    "for None (burstiness 1.0, DEFAULT_WARMUP_FRACTION; rate_per_s has none)"
)
_ONE_PER_ITERATION = (
    "the mean is taken only when every energy is known, and then there is one per iteration: zip's strict never acts"
)
_BOTH_BOUNDS = "start and end are set together (the window's, the bounds', or neither): one is None only with the other"
_SAME_LENGTH = "two columns of one frame always have the same length: zip's strict never acts"
EQUIVALENT: dict[str, tuple[str, str]] = {
    "harness.measuring.energy.xǁZeusMeterǁ__init____mutmut_53": (
        'if wanted and note and note != "XXhiddenXX":',
        'note == "hidden" only when no GPU is visible, and then wanted is [] and the test is False either way',
    ),
    "harness.measuring.energy.xǁZeusMeterǁ__init____mutmut_54": (
        'if wanted and note and note != "HIDDEN":',
        'note == "hidden" only when no GPU is visible, and then wanted is [] and the test is False either way',
    ),
    "harness.measuring.energy.xǁZeusMeterǁ__init____mutmut_77": (
        'cpus = list(getattr(self._monitor, "cpu_indices", None) or [])',
        "a missing attribute gives None instead of [], and `or []` makes both []",
    ),
    "harness.measuring.energy.xǁNvmlCounterMonitorǁbegin_window__mutmut_1": (
        "def begin_window(self, name: str, sync_execution: bool = True) -> None:",
        "sync_execution is there for ZeusMonitor's signature and never read: the counter has nothing to synchronise",
    ),
    "harness.measuring.energy.xǁNvmlCounterMonitorǁend_window__mutmut_1": (
        "def end_window(self, name: str, sync_execution: bool = True, cancel: bool = False):",
        "sync_execution is there for ZeusMonitor's signature and never read: the counter has nothing to synchronise",
    ),
    "harness.measuring.arrivals.x_from_options__mutmut_54": (
        'warm = number("warmup_fraction", DEFAULT_WARMUP_FRACTION, strict=None)',
        "strict is only tested for truth: None reads as False",
    ),
    "harness.measuring.arrivals.x_from_options__mutmut_99": (
        'for key in ("rate_per_s", "warmup_fraction") + (("burstiness",) if ("burstiness" in opts) or True else ()):',
        "a burstiness key that is absent reads None and is not refused either way",
    ),
    "harness.measuring.arrivals.xǁArrivalǁoffsets_s__mutmut_25": (
        "gaps = rng.gamma(self.burstiness, 1.0 / (self.rate_per_s * self.burstiness), size=max(1, n - 1))",
        "an extra gap drawn for n <= 1 is cut off by [:n]",
    ),
    "harness.measuring.arrivals.xǁArrivalǁoffsets_s__mutmut_26": (
        "gaps = rng.gamma(self.burstiness, 1.0 / (self.rate_per_s * self.burstiness), size=max(0, n + 1))",
        "the generator draws the same first n - 1 gaps; the two extra ones are cut off by [:n]",
    ),
    "harness.measuring.arrivals.xǁGateǁ__init____mutmut_19": (
        "self._order: list[asyncio.Event] = [asyncio.Event() for _ in range(num_requests)] if (self._slots) or True else []",  # noqa: E501
        "the order events are only waited on where there are slots (a concurrency gate)",
    ),
    "harness.measuring.arrivals.x_from_options__mutmut_19": (
        "value = opts.get(key, None)",
        _ABSENT_DEFAULT,
    ),
    "harness.measuring.arrivals.x_from_options__mutmut_21": ("value = opts.get(key, )", _ABSENT_DEFAULT),
    "harness.measuring.arrivals.x_from_options__mutmut_45": ('burst = number("burstiness", None)', _ABSENT_DEFAULT),
    "harness.measuring.arrivals.x_from_options__mutmut_47": ('burst = number("burstiness", )', _ABSENT_DEFAULT),
    "harness.measuring.arrivals.x_from_options__mutmut_53": (
        'warm = number("warmup_fraction", None, strict=False)',
        _ABSENT_DEFAULT,
    ),
    "harness.measuring.arrivals.x_from_options__mutmut_56": (
        'warm = number("warmup_fraction", strict=False)',
        _ABSENT_DEFAULT,
    ),
    "harness.measuring.arrivals.xǁGateǁsend__mutmut_4": (
        "acquired = True",
        (
            "with slots a request reaches the release only after acquiring one (a cancelled wait re-raises before "
            "it); without slots the release is skipped by `self._slots is not None`"
        ),
    ),
    "harness.measuring.arrivals.xǁGateǁsend__mutmut_38": (
        "if acquired or self._slots is not None:  # acquired: there are slots",
        "a request that reaches the release has acquired a slot exactly when there are slots",
    ),
    "harness.measuring.arrivals.xǁGateǁsend__mutmut_3": (
        "acquired = None",
        "acquired is only tested for truth: None reads as False",
    ),
    "harness.measuring.steady.x_diffusion_metrics__mutmut_64": (
        "statistics.fmean(e / b for e, b in zip(joules, (i.batch_size for i in iterations), strict=None))",
        _ONE_PER_ITERATION,
    ),
    "harness.measuring.steady.x_diffusion_metrics__mutmut_67": (
        "statistics.fmean(e / b for e, b in zip(joules, (i.batch_size for i in iterations), ))",
        _ONE_PER_ITERATION,
    ),
    "harness.measuring.steady.x_diffusion_metrics__mutmut_68": (
        "statistics.fmean(e / b for e, b in zip(joules, (i.batch_size for i in iterations), strict=True))",
        _ONE_PER_ITERATION,
    ),
    "harness.measuring.steady.x_llm_metrics__mutmut_95": (
        "rid: sum(1 for t in ts if start < t <= end) if start is not None or end is not None else 0",
        _BOTH_BOUNDS,
    ),
    "harness.measuring.steady.x_llm_metrics__mutmut_105": (
        "duration = (end - start) if start is not None or end is not None else None",
        _BOTH_BOUNDS,
    ),
    "harness.measuring.steady.x_llm_metrics__mutmut_123": (
        "if start is None and end is None or start < b <= end:",
        _BOTH_BOUNDS,
    ),
    "harness.measuring.steady.x_llm_metrics__mutmut_142": (
        "if duration and start is not None or end is not None:  # a duration has both bounds",
        _BOTH_BOUNDS + "; with both set and a zero duration the busy time summed is never read (avg_batch is None)",
    ),
    "harness.measuring.steady.x_llm_metrics__mutmut_143": (
        "if duration or start is not None and end is not None:  # a duration has both bounds",
        "with both bounds and a zero duration the busy time summed is never read: avg_batch is None for duration 0",
    ),
    "harness.measuring.steady.x__events__mutmut_7": (
        "events.append((r.finish_time_s, 2))",
        "a finish is any kind but 0 (first tokens): 2 sorts after 0 and reads as a finish like 1",
    ),
    "harness.measuring.steady.x_llm_metrics__mutmut_1": (
        'arrival = ""',
        "arrival is only tested for truth: '' reads as None",
    ),
    "harness.measuring.steady.x_llm_metrics__mutmut_44": (
        "avg_len = statistics.fmean(planned) if (planned) or True else None",
        "planned holds at least the stopped requests in this branch, so it is never empty",
    ),
    "harness.measuring.steady.x_llm_metrics__mutmut_4": (
        'if load and load.get("pattern", None) != "all-at-once":',
        _ALL_AT_ONCE,
    ),
    "harness.measuring.steady.x_llm_metrics__mutmut_5": (
        'if load and load.get("all-at-once") != "all-at-once":',
        _ALL_AT_ONCE,
    ),
    "harness.measuring.steady.x_llm_metrics__mutmut_6": (
        'if load and load.get("pattern", ) != "all-at-once":',
        _ALL_AT_ONCE,
    ),
    "harness.measuring.steady.x_llm_metrics__mutmut_9": (
        'if load and load.get("pattern", "XXall-at-onceXX") != "all-at-once":',
        _ALL_AT_ONCE,
    ),
    "harness.measuring.steady.x_llm_metrics__mutmut_10": (
        'if load and load.get("pattern", "ALL-AT-ONCE") != "all-at-once":',
        _ALL_AT_ONCE,
    ),
    "harness.measuring.steady.x_llm_metrics__mutmut_12": (
        'if load and load.get("pattern", "all-at-once") != "XXall-at-onceXX":',
        _ALL_AT_ONCE,
    ),
    "harness.measuring.steady.x_llm_metrics__mutmut_13": (
        'if load and load.get("pattern", "all-at-once") != "ALL-AT-ONCE":',
        _ALL_AT_ONCE,
    ),
    "harness.measuring.energy_timeline.x__nvml__mutmut_15": (
        "return nvml if (len(nvml)) or True else None",
        "an empty NVML frame leads to the same results as None: no counter curves, and slices on a regular grid",
    ),
    "harness.measuring.fidelity.x__share__mutmut_18": (
        "if pending or last is not None:",
        "with last set, adding a zero pending changes nothing; last is None only when no slice has a token, and then no token reads the carried amounts",  # noqa: E501
    ),
    "harness.measuring.fidelity.x__share__mutmut_2": (
        "per_slice = np.bincount(token_slice, minlength=len(quantity)).astype(None)",
        "the values are floats already: asking numpy for no dtype gives float64 as well",
    ),
    "harness.measuring.fidelity.x__slices__mutmut_10": (
        't = nvml.loc[nvml["gpu_index"] == first, "time_s"].to_numpy(None)',
        "the values are floats already: asking numpy for no dtype gives float64 as well",
    ),
    "harness.measuring.fidelity.x_bootstrap_ratio__mutmut_12": (
        "if len(num) < MIN_RESAMPLE_UNITS or den.sum() < 0:",
        "with no denominator every resample is left out (d > 0) and the function still returns None",
    ),
    "harness.measuring.fidelity.x_bootstrap_ratio__mutmut_20": (
        "idx = rng.integers(len(num), size=(resamples, len(num)))",
        "Generator.integers(n) draws from [0, n) with the same stream as integers(0, n)",
    ),
    "harness.measuring.fidelity.x_bootstrap_ratio__mutmut_3": (
        "num, den = np.asarray(numerators, None), np.asarray(denominators, float)",
        "the values are floats already: asking numpy for no dtype gives float64 as well",
    ),
    "harness.measuring.fidelity.x_bootstrap_ratio__mutmut_5": (
        "num, den = np.asarray(numerators, ), np.asarray(denominators, float)",
        "the values are floats already: asking numpy for no dtype gives float64 as well",
    ),
    "harness.measuring.fidelity.x_bootstrap_ratio__mutmut_7": (
        "num, den = np.asarray(numerators, float), np.asarray(denominators, None)",
        "the values are floats already: asking numpy for no dtype gives float64 as well",
    ),
    "harness.measuring.fidelity.x_bootstrap_ratio__mutmut_9": (
        "num, den = np.asarray(numerators, float), np.asarray(denominators, )",
        "the values are floats already: asking numpy for no dtype gives float64 as well",
    ),
    "harness.measuring.energy_timeline.x_counter_curves__mutmut_23": (
        'out[int(index)] = (rows["time_s"].to_numpy(None), rows["energy_counter_joules"].to_numpy(float))',
        "the values are floats already: asking numpy for no dtype gives float64 as well",
    ),
    "harness.measuring.energy_timeline.x_counter_curves__mutmut_26": (
        'out[int(index)] = (rows["time_s"].to_numpy(float), rows["energy_counter_joules"].to_numpy(None))',
        "the values are floats already: asking numpy for no dtype gives float64 as well",
    ),
    "harness.measuring.energy_timeline.x_counter_energy__mutmut_4": (
        "edges = np.asarray(edges, None)",
        "the values are floats already: asking numpy for no dtype gives float64 as well",
    ),
    "harness.measuring.energy_timeline.x_counter_energy__mutmut_6": (
        "edges = np.asarray(edges, )",
        "the values are floats already: asking numpy for no dtype gives float64 as well",
    ),
    "harness.measuring.fidelity.x_diffusion_intervals__mutmut_22": (
        "ci = bootstrap_mean(latencies) if (len(latencies) >= MIN_RESAMPLE_UNITS) or True else None",
        "bootstrap_mean returns None itself for fewer than 2 units",
    ),
    "harness.measuring.fidelity.x_diffusion_intervals__mutmut_51": (
        'out["energy_per_output_joules"] = list(energy_ci) if (energy_ci) or True else None',
        "here there are at least 2 values and a denominator of ones, so bootstrap_mean always gives an interval",
    ),
    "harness.measuring.fidelity.x_llm_intervals__mutmut_132": (
        "width = max((end - start) / MAX_TIME_SLICES, TIME_SLICE_GAPS * float(np.median(gaps)) if (len(gaps)) or True else 0.0)",  # noqa: E501
        "without gaps the median is NaN, and max() keeps its first argument against NaN: the same width",
    ),
    "harness.measuring.fidelity.x_llm_intervals__mutmut_139": (
        "fine = np.linspace(start, end, max(1, int((end - start) / width)) + 1) if (width > 0) or True else edges",
        "end > start here, so width is at least (end - start) / 10000, never 0",
    ),
    "harness.measuring.fidelity.x_error_budget__mutmut_4": (
        'duration = metrics.get("steady_duration_s") if (is_llm) or True else None',
        "a diffusion run's duration is set to its batch latency on the next line",
    ),
    "harness.measuring.fidelity.x_llm_intervals__mutmut_116": (
        "gaps = np.concatenate([np.diff(np.asarray(token_times(r), None)) for r in requests] or [np.array([])])",
        "the values are floats already: asking numpy for no dtype gives float64 as well",
    ),
    "harness.measuring.fidelity.x_llm_intervals__mutmut_118": (
        "gaps = np.concatenate([np.diff(np.asarray(token_times(r), )) for r in requests] or [np.array([])])",
        "the values are floats already: asking numpy for no dtype gives float64 as well",
    ),
    "harness.measuring.fidelity.x_llm_intervals__mutmut_120": (
        "gaps = np.concatenate([np.diff(np.asarray(token_times(r), float)) for r in requests] or [np.array(None)])",
        "the fallback is used only without requests, and then the function has returned already",
    ),
    "harness.measuring.fidelity.x_llm_intervals__mutmut_156": (
        "fine = np.linspace(start, end, max(1, int((end - start) / width)) + 1) if width >= 0 else edges",
        "width is at least (end - start) / 10000, never 0",
    ),
    "harness.measuring.fidelity.x_llm_intervals__mutmut_160": (
        'where = np.clip(np.searchsorted(fine, times, side="left") - 1, None, len(fine) - 2)',
        "every token lies in (start, end], and the edges run from start to exactly end, so the clip never acts at this bound",  # noqa: E501
    ),
    "harness.measuring.fidelity.x_llm_intervals__mutmut_161": (
        'where = np.clip(np.searchsorted(fine, times, side="left") - 1, 0, None)',
        "every token lies in (start, end], and the edges run from start to exactly end, so the clip never acts at this bound",  # noqa: E501
    ),
    "harness.measuring.fidelity.x_llm_intervals__mutmut_176": (
        'where = np.clip(np.searchsorted(fine, times, side="left") - 1, 0, len(fine) + 2)',
        "every token lies in (start, end], and the edges run from start to exactly end, so the clip never acts at this bound",  # noqa: E501
    ),
    "harness.measuring.fidelity.x_llm_intervals__mutmut_66": (
        'token_slice = np.clip(np.searchsorted(edges, times, side="left") - 1, None, len(edges) - 2)',
        "every token lies in (start, end], and the edges run from start to exactly end, so the clip never acts at this bound",  # noqa: E501
    ),
    "harness.measuring.fidelity.x_llm_intervals__mutmut_67": (
        'token_slice = np.clip(np.searchsorted(edges, times, side="left") - 1, 0, None)',
        "every token lies in (start, end], and the edges run from start to exactly end, so the clip never acts at this bound",  # noqa: E501
    ),
    "harness.measuring.fidelity.x_llm_intervals__mutmut_82": (
        'token_slice = np.clip(np.searchsorted(edges, times, side="left") - 1, 0, len(edges) + 2)',
        "every token lies in (start, end], and the edges run from start to exactly end, so the clip never acts at this bound",  # noqa: E501
    ),
    "harness.measuring.fidelity.x_llm_intervals__mutmut_171": (
        "where = np.clip(np.searchsorted(fine, times, ) - 1, 0, len(fine) - 2)",
        'side="left" is searchsorted\'s default',
    ),
    "harness.measuring.fidelity.x_llm_intervals__mutmut_77": (
        "token_slice = np.clip(np.searchsorted(edges, times, ) - 1, 0, len(edges) - 2)",
        'side="left" is searchsorted\'s default',
    ),
    "harness.measuring.fidelity.x_llm_intervals__mutmut_230": (
        "slice_energy = np.diff(edges) * window_energy_joules * (end - start)",
        "the shares are scaled to the window's reading afterwards, so a constant factor on every slice cancels",
    ),
    "harness.measuring.fidelity.x_llm_intervals__mutmut_233": (
        "slice_energy = np.diff(edges) * window_energy_joules / (end + start)",
        "the shares are scaled to the window's reading afterwards, so a constant factor on every slice cancels",
    ),
    "harness.measuring.fidelity.x_llm_intervals__mutmut_39": (
        "ts = np.asarray(token_times(r), None)",
        "the values are floats already: asking numpy for no dtype gives float64 as well",
    ),
    "harness.measuring.fidelity.x_llm_intervals__mutmut_41": (
        "ts = np.asarray(token_times(r), )",
        "the values are floats already: asking numpy for no dtype gives float64 as well",
    ),
    "harness.measuring.fidelity.x_llm_intervals__mutmut_85": (
        "tokens = np.bincount(owner, minlength=len(requests)).astype(None)",
        "the values are floats already: asking numpy for no dtype gives float64 as well",
    ),
    "harness.measuring.fidelity.x_llm_intervals__mutmut_61": (
        "times, owner = np.concatenate(times or [np.array([])]), np.concatenate(owner or [np.array([], None)]).astype(int)",  # noqa: E501
        "an empty array of floats is cast to int on the same line",
    ),
    "harness.measuring.fidelity.x_llm_intervals__mutmut_63": (
        "times, owner = np.concatenate(times or [np.array([])]), np.concatenate(owner or [np.array([], )]).astype(int)",
        "an empty array of floats is cast to int on the same line",
    ),
    "harness.analysis.tables.attribution.x__attribute_diffusion__mutmut_28": (
        "return float(value) if is_number(value) and value > 1 else 1.0",
        "frame counts are whole numbers: for 1 frame both give 1.0",
    ),
    "harness.analysis.tables.attribution.x_format_number__mutmut_11": (
        "if float(x).is_integer() and ax <= 1e7:",
        "integers under 1e7 and 1e7 itself print the same way in both branches",
    ),
    "harness.analysis.tables.attribution.x_format_number__mutmut_12": (
        "if float(x).is_integer() and ax < 10000001.0:",
        "integers under 1e7 and 1e7 itself print the same way in both branches",
    ),
    "harness.analysis.tables.attribution.x_format_number__mutmut_14": (
        "if ax > 1e4:",
        "10,000 exactly is an integer, printed by the branch before",
    ),
    "harness.analysis.tables.attribution.x_format_number__mutmut_15": (
        "if ax >= 10001.0:",
        "between 10,000 and 10,001 the next branch prints the same ',.0f'",
    ),
    "harness.analysis.tables.attribution.x_format_number__mutmut_16": (
        "if ax > 100:",
        "100 exactly is an integer, printed by the branch before",
    ),
    "harness.analysis.tables.attribution.x_format_number__mutmut_18": (
        "if ax > 10:",
        "10 exactly is an integer, printed by the branch before",
    ),
    "harness.analysis.tables.attribution.x_format_number__mutmut_20": (
        "if ax > 0.01:",
        "both remaining branches print '.3g'",
    ),
    "harness.analysis.tables.attribution.x_format_number__mutmut_21": (
        "if ax >= 1.01:",
        "both remaining branches print '.3g'",
    ),
    "harness.analysis.tables.attribution.x__times__mutmut_2": (
        "if r > 1 or 1 / r < 1.05:",
        "for r = 1, 1 / r = 1 < 1.05 takes the same branch",
    ),
    "harness.analysis.tables.attribution.x__times__mutmut_3": (
        "if r >= 2 or 1 / r < 1.05:",
        "for r >= 1, 1 / r <= 1 < 1.05 takes the same branch",
    ),
    "harness.analysis.tables.attribution.xǁAttributionǁexplain__mutmut_39": (
        "ranked = sorted(self.factors, key=lambda f: -abs(f.log_share) if (not math.isnan(f.log_share)) or True else 0)",  # noqa: E501
        "log_share is NaN only for a ratio <= 0, and every factor's ratio is positive (the rows are checked first)",
    ),
    "harness.analysis.tables.attribution.xǁAttributionǁexplain__mutmut_44": (
        "ranked = sorted(self.factors, key=lambda f: -abs(f.log_share) if not math.isnan(f.log_share) else 1)",
        "log_share is NaN only for a ratio <= 0, and every factor's ratio is positive (the rows are checked first)",
    ),
    "harness.analysis.tables.attribution.xǁAttributionǁexplain__mutmut_48": (
        "if abs(f.ratio - 1) <= 5e-4:",
        (
            "for a ratio in [0.5, 2] r - 1 is exact and a multiple of 2**-53, which the double 5e-4 is not; other "
            "ratios are far from 1: no ratio lands exactly 5e-4 from 1"
        ),
    ),
    "harness.analysis.tables.attribution.xǁAttributionǁexplain__mutmut_53": (
        "if f.value_a is not None or f.value_b is not None:",
        "a factor has both values or neither (the residual)",
    ),
    "harness.analysis.tables.attribution.xǁAttributionǁto_frame__mutmut_11": (
        'total = math.log(self.ratio) if (self.ratio > 0) or True else float("nan")',
        "the ratio of two checked positive energies is positive",
    ),
    "harness.analysis.tables.attribution.xǁAttributionǁto_frame__mutmut_13": (
        'total = math.log(self.ratio) if self.ratio >= 0 else float("nan")',
        "the ratio of two checked positive energies is never 0",
    ),
    "harness.analysis.tables.attribution.xǁAttributionǁto_frame__mutmut_6": (
        'logs = np.log(frame["ratio"].astype(None))',
        "the ratio column is float already",
    ),
    "harness.analysis.tables.attribution.xǁAttributionǁto_frame__mutmut_15": (
        "total = math.log(self.ratio) if self.ratio > 0 else float(None)",
        "the ratio of two checked positive energies is positive: the NaN branch is never taken",
    ),
    "harness.analysis.tables.attribution.xǁAttributionǁto_frame__mutmut_16": (
        'total = math.log(self.ratio) if self.ratio > 0 else float("XXnanXX")',
        "the ratio of two checked positive energies is positive: the NaN branch is never taken",
    ),
    "harness.analysis.tables.attribution.xǁAttributionǁto_frame__mutmut_17": (
        'total = math.log(self.ratio) if self.ratio > 0 else float("NAN")',
        "the ratio of two checked positive energies is positive: the NaN branch is never taken",
    ),
    "harness.measuring.validator.x__readings__mutmut_1": (
        "if timeline is None or not len(timeline) and start is None:",
        (
            "with no start the window is (None, end): pandas compares no time with None, the rows are empty, and the "
            "function still returns None"
        ),
    ),
    "harness.measuring.validator.x_validate__mutmut_422": (
        'if v == v and str(source.get(str(int(g)), source.get(int(g), None))).startswith("nvml/power-instant")',
        _DEFAULT_SOURCE,
    ),
    "harness.measuring.validator.x_validate__mutmut_424": (
        'if v == v and str(source.get(str(int(g)), source.get(int(g), ))).startswith("nvml/power-instant")',
        _DEFAULT_SOURCE,
    ),
    "harness.measuring.validator.x_validate__mutmut_426": (
        'if v == v and str(source.get(str(int(g)), source.get(int(g), "XXXX"))).startswith("nvml/power-instant")',
        _DEFAULT_SOURCE,
    ),
    "harness.measuring.validator.x_validate__mutmut_454": (
        'if v == v and not str(source.get(str(int(g)), source.get(int(g), None))).startswith("nvml/power-instant")',
        _DEFAULT_SOURCE,
    ),
    "harness.measuring.validator.x_validate__mutmut_456": (
        'if v == v and not str(source.get(str(int(g)), source.get(int(g), ))).startswith("nvml/power-instant")',
        _DEFAULT_SOURCE,
    ),
    "harness.measuring.validator.x_validate__mutmut_458": (
        'if v == v and not str(source.get(str(int(g)), source.get(int(g), "XXXX"))).startswith("nvml/power-instant")',
        _DEFAULT_SOURCE,
    ),
    "harness.measuring.validator.x_validate__mutmut_402": (
        'for g, v in zip(readings["gpu_index"], readings["power_watts"], strict=None)',
        _SAME_LENGTH,
    ),
    "harness.measuring.validator.x_validate__mutmut_405": (
        'for g, v in zip(readings["gpu_index"], readings["power_watts"], )',
        _SAME_LENGTH,
    ),
    "harness.measuring.validator.x_validate__mutmut_410": (
        'for g, v in zip(readings["gpu_index"], readings["power_watts"], strict=True)',
        _SAME_LENGTH,
    ),
    "harness.measuring.validator.x_validate__mutmut_433": (
        'for g, v in zip(readings["gpu_index"], readings["power_watts"], strict=None)',
        _SAME_LENGTH,
    ),
    "harness.measuring.validator.x_validate__mutmut_436": (
        'for g, v in zip(readings["gpu_index"], readings["power_watts"], )',
        _SAME_LENGTH,
    ),
    "harness.measuring.validator.x_validate__mutmut_441": (
        'for g, v in zip(readings["gpu_index"], readings["power_watts"], strict=True)',
        _SAME_LENGTH,
    ),
}


def equivalent_reason(name: str, change: str) -> str | None:
    """Why the mutant ``name`` is equivalent, if it is listed and its change is still the one listed."""
    listed = EQUIVALENT.get(name)
    if listed is None:
        return None
    added = [line[2:].strip() for line in change.splitlines() if line.startswith("+ ")]
    return listed[1] if added == [listed[0]] else None


def outcome(code) -> str:
    if code in KILLED:
        return "killed"
    return OUTCOME.get(code, "suspicious")


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def results_of(sources: tuple[str, ...], patterns: tuple[str, ...]) -> dict[str, object]:
    """Mutant name -> mutmut's exit code, for the mutants of ``sources`` in scope (``mutants/<source>.meta``)."""
    out: dict[str, object] = {}
    for source in sources:
        meta = ROOT / "mutants" / f"{source}.meta"
        if meta.exists():
            codes = json.loads(meta.read_text()).get("exit_code_by_key", {})
            out.update((name, code) for name, code in codes.items() if _matches(name, patterns))
    return out


def _blocks(source: str) -> dict[str, list[str]]:
    """Every function of mutmut's copy of ``source`` (``mutants/<source>``) by name: its lines from the ``def``
    (written with the function's own name), under the module's dotted name (``harness.measuring.energy.x_f__mutmut_1``;
    a package's ``__init__.py`` is the package itself, as mutmut names its mutants)."""
    module = source.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    lines = (ROOT / "mutants" / source).read_text().splitlines()
    out, i = {}, 0
    while i < len(lines):
        m = re.match(r"^(\s*)(?:async )?def (x\S*?__mutmut_\w+)\(", lines[i])
        if not m:
            i += 1
            continue
        indent, j = len(m.group(1)), i + 1
        while j < len(lines) and (
            not lines[j].strip()
            or len(lines[j]) - len(lines[j].lstrip()) > indent
            or lines[j].lstrip().startswith(")")  # the end of a signature written over several lines
        ):
            j += 1
        plain = re.sub(r"__mutmut_\w+$", "", m.group(2).rsplit("ǁ", 1)[-1].removeprefix("x_"))
        signature = lines[i].replace(m.group(2), plain, 1)  # a default argument's change shows on this line
        out[f"{module}.{m.group(2)}"] = [signature, *lines[i + 1 : j]]
        i = j
    return out


def change_of(name: str, blocks: dict[str, list[str]]) -> str:
    """The mutant's change as ``- old`` / ``+ new`` lines, against the function as written."""
    original = blocks.get(re.sub(r"__mutmut_\d+$", "__mutmut_orig", name), [])
    mutated = blocks.get(name, [])
    return "\n".join(line.rstrip() for line in difflib.ndiff(original, mutated) if line[:2] in ("- ", "+ "))


def _env() -> dict:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # mutmut imports the mutated copy under mutants/
    env.setdefault("HARNESS_REFERENCE_DIR", _common.REFERENCE_DIR)
    return env


def run_module(name: str, max_children: int, survivors_only: bool = False) -> float:
    """``mutmut run`` over the module's mutants (or only those that survived or were not checked last time)."""
    sources, patterns, _ = MODULES[name]
    names = list(patterns)
    if survivors_only:
        names = sorted(n for n, c in results_of(sources, patterns).items() if outcome(c) != "killed")
        if not names:
            return 0.0
    start = time.perf_counter()
    log = ROOT / "mutants" / f"run-{name}.log"  # mutmut's progress, to follow a long run
    log.parent.mkdir(exist_ok=True)
    with open(log, "w") as out:
        proc = subprocess.run(
            [str(MUTMUT), "run", "--max-children", str(max_children), *names],
            cwd=ROOT,
            env=_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").replace("\r", "\n").strip().splitlines()[-5:]
        raise SystemExit(f"mutmut run for {name} failed ({proc.returncode}): " + " | ".join(tail))
    return time.perf_counter() - start


def summarise(name: str, seconds: float | None) -> dict:
    sources, patterns, scope = MODULES[name]
    codes = results_of(sources, patterns)
    counts: dict[str, int] = {}
    for code in codes.values():
        counts[outcome(code)] = counts.get(outcome(code), 0) + 1
    survivors = sorted(
        (n for n, c in codes.items() if outcome(c) in ("survived", "no tests", "suspicious")),
        key=lambda n: (n.rsplit("__mutmut_", 1)[0], int(n.rsplit("_", 1)[1])),
    )
    blocks = {k: v for source in sources for k, v in _blocks(source).items()} if survivors else {}
    changes = {n: change_of(n, blocks) for n in survivors}
    reasons = {n: equivalent_reason(n, changes[n]) for n in survivors}
    equivalent = [n for n in survivors if reasons[n]]
    total, killed = len(codes), counts.get("killed", 0)
    checked = total - counts.get("not checked", 0) - counts.get("skipped", 0)
    denominator = checked - len(equivalent)
    score = killed / denominator if denominator else None
    return {
        "sources": list(sources),
        "scope": scope,
        "total": total,
        "checked": checked,
        "killed": killed,
        "survived": counts.get("survived", 0),
        "no_tests": counts.get("no tests", 0),
        "equivalent": len(equivalent),
        "not_checked": counts.get("not checked", 0),
        "score": score,
        "met": score is not None and score >= GOAL and checked == total,
        "seconds": seconds,
        "survivors": [
            {
                "mutant": n,
                "outcome": outcome(codes[n]),
                "change": changes[n],
                **({"equivalent": reasons[n]} if reasons[n] else {}),
            }
            for n in survivors
        ],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", nargs="*", choices=list(MODULES), help="only these (default: all, in order)")
    parser.add_argument("--max-children", type=int, default=1, help="mutants tested at once (default 1)")
    parser.add_argument("--report-only", action="store_true", help="rewrite the result file from the last runs")
    parser.add_argument(
        "--survivors",
        action="store_true",
        help="test again only the mutants that were not killed last time (after adding tests)",
    )
    args = parser.parse_args(argv)
    if not MUTMUT.exists():
        raise SystemExit(f"mutmut is not installed in this venv ({MUTMUT}): .venv/bin/pip install mutmut==3.8.1")
    load_before = _common.loadavg()
    out_path = _common.RESULTS / "mutation.json"
    previous = json.loads(out_path.read_text()).get("modules", {}) if out_path.exists() else {}
    modules = {}
    for name in MODULES:
        seconds = previous.get(name, {}).get("seconds")
        runs = list(previous.get(name, {}).get("runs", []))
        if not args.report_only and (not args.module or name in args.module):
            print(f"== {name}: mutmut run over {', '.join(MODULES[name][0])} ({MODULES[name][2]})", flush=True)
            before = _common.loadavg()
            spent = run_module(name, args.max_children, args.survivors)
            seconds = spent + (seconds or 0.0) if args.survivors else spent
            run = {
                "command": "benchmarks/mutation.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                "survivors_only": args.survivors,
                "max_children": args.max_children,
                "seconds": round(spent, 1),
                "loadavg_1_5_15_before": before,
                "loadavg_1_5_15_after": _common.loadavg(),
                "git_commit": _common.git_commit(),
                "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            runs = [*runs, run] if args.survivors else [run]  # a full run starts the module's record afresh
        modules[name] = {**summarise(name, seconds), "runs": runs}
        m = modules[name]
        score = "-" if m["score"] is None else f"{100 * m['score']:.1f}%"
        print(
            f"{name:10s} {m['killed']:5d} killed of {m['checked']:5d} checked ({m['total']} in scope; "
            f"{m['equivalent']} equivalent) = {score}",
            flush=True,
        )
    met = all(m["met"] for m in modules.values())
    figure = "; ".join(
        f"{n} {m['killed']}/{m['checked'] - m['equivalent']}"
        + (f" = {100 * m['score']:.1f}%" if m["score"] is not None else "")
        for n, m in modules.items()
    )
    result = {
        "benchmark": "mutation",
        "figure": f"mutants killed (killed / checked - equivalent): {figure}",
        "status": "PASS" if met else "MISSED",
        "goal": f">= {GOAL:.0%} of the mutants of every module killed, each survivor listed (equivalent ones say why)",
        "command": "make mutation  (.venv/bin/python benchmarks/mutation.py [--module NAME ...])",
        "tool": "mutmut 3.8.1, [tool.mutmut] of pyproject.toml; tests: its pytest_add_cli_args_test_selection",
        "host": _common.host_facts(load_before),
        "modules": modules,
    }
    _common.RESULTS.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"{result['status']}: {result['figure']} -> {out_path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
