"""Frontier planner: measure a series' batch sizes in the order the model's uncertainty suggests, stop when settled.

A *series* is one model, task, GPU model and count swept over its batch knob. The planner keeps the
predictions of :mod:`harness.analysis.predict` for the unmeasured batches, corrected by the batches already
measured (the series-level residual curve), with their intervals. For each ITL target (the reference's 50, 100
and 250 ms, and no target: the frontier's lowest-energy end) it knows the best measured configuration that meets
the target. An unmeasured batch is still a *candidate* when its interval allows it to meet a target
(optimistic ITL at or under it) and to beat that target's best measured energy by more than ``tolerance``
(optimistic energy). The planner measures the candidate with the lowest optimistic energy next and stops when
no candidate is left: then the lowest-energy configuration under every target is settled, and so is the
time-energy frontier at those targets. Diffusion series have no ITL target; only the lowest energy is settled.

:class:`ReplayBackend` answers from published rows, so the planner can be scored against the reference as an
oracle (``benchmarks/planner_replay.py``); :func:`frontier_order` drives real runs through the runner
(``measure --strategy frontier``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import numpy as np
import pandas as pd

from harness.analysis import predict as P
from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.config import Configuration, Study

ITL_TARGETS_MS = (50.0, 100.0, 250.0)
TOLERANCE = 0.02
PLANNER_COVERAGE = 0.6  # chosen by the replay (benchmarks/planner_replay.py); 0.8 measured 33.4% of the LLM grid


def _energy_column(kind: str) -> str:
    return "energy_per_token_joules" if kind == "llm" else "energy_per_output_joules"


def _time_column(kind: str) -> str:
    return "median_itl_ms" if kind == "llm" else "batch_latency_s"


@dataclass
class SeriesPlanner:
    """Plans one series. ``grid`` holds one row of facts per batch (the reference's columns)."""

    model: P.Fit
    grid: pd.DataFrame
    targets: tuple[float, ...] = ITL_TARGETS_MS
    tolerance: float = TOLERANCE
    coverage: float = PLANNER_COVERAGE
    measured: dict = field(default_factory=dict)  # batch -> observed row (a dict with the reference's columns)

    def __post_init__(self):
        self.kind = self.model.kind
        self.batch = P.spec_of(self.kind).batch
        self.grid = self.grid.sort_values(self.batch).reset_index(drop=True)
        self._X = self.model.design.matrix(self.grid)
        self._L = np.log2(self.grid[self.batch].astype(float).to_numpy())
        self.all_targets = (tuple(self.targets) if self.kind == "llm" else ()) + (math.inf,)

    # -- predictions with the measured batches folded in
    def predictions(self) -> pd.DataFrame:
        base = self._X @ self.model.beta
        done = [i for i, b in enumerate(self.grid[self.batch]) if b in self.measured]
        corr = np.zeros_like(base)
        dist = np.full(len(self.grid), np.nan)
        interior = np.zeros(len(self.grid), bool)
        level = "facts"
        if done:
            rows = pd.DataFrame([self.measured[self.grid.at[i, self.batch]] for i in done])
            resid = P.targets(rows, self.kind) - base[done]
            Ls = self._L[done]
            for i in range(len(self.grid)):
                corr[i] = P.residual_at(Ls, resid, self._L[i])
                dist[i] = float(np.min(np.abs(Ls - self._L[i])))
                interior[i] = Ls.min() < self._L[i] < Ls.max()
            level = "series"
        point = P.derive(base + corr, self.grid[self.batch].astype(float).to_numpy(), self.kind)
        out = pd.DataFrame({self.batch: self.grid[self.batch]})
        cal = self.model.calibrated()
        for name in (_energy_column(self.kind), _time_column(self.kind)):
            lo, hi = np.empty(len(self.grid)), np.empty(len(self.grid))
            for i in range(len(self.grid)):
                qlo, qhi = cal.quantiles(name, P.stratum(level, interior[i]), self.coverage, dist[i])
                lo[i], hi[i] = point[name][i] * math.exp(qlo), point[name][i] * math.exp(qhi)
            out[name], out[f"{name}_low"], out[f"{name}_high"] = point[name], lo, hi
        out["measured"] = out[self.batch].isin(list(self.measured))
        return out

    def best_measured(self, target: float) -> tuple[int | None, float]:
        e, t = _energy_column(self.kind), _time_column(self.kind)
        best, best_e = None, math.inf
        for b, row in self.measured.items():
            ok = self.kind != "llm" or math.isinf(target) or row[t] <= target
            if ok and np.isfinite(row[e]) and row[e] < best_e:
                best, best_e = b, float(row[e])
        return best, best_e

    def candidates(self) -> pd.DataFrame:
        """Unmeasured batches that could still meet a target and beat its best measured energy."""
        pred = self.predictions()
        e, t = _energy_column(self.kind), _time_column(self.kind)
        open_ = pred[~pred["measured"]]
        keep = pd.Series(False, index=open_.index)
        for target in self.all_targets:
            _, best_e = self.best_measured(target)
            feasible = open_[f"{t}_low"] <= target if self.kind == "llm" else pd.Series(True, index=open_.index)
            keep |= feasible & (open_[f"{e}_low"] < best_e * (1 - self.tolerance))
        return open_[keep]

    def next_batch(self) -> int | None:
        cands = self.candidates()
        if cands.empty:
            return None
        e = _energy_column(self.kind)
        return int(cands.sort_values(f"{e}_low").iloc[0][self.batch])

    def observe(self, batch: int, row: dict) -> None:
        self.measured[batch] = row

    def choices(self) -> dict[float, int | None]:
        """The chosen (measured) configuration per target: its batch, None when nothing measured meets it."""
        return {target: self.best_measured(target)[0] for target in self.all_targets}

    def run(self, measure: Callable[[int], dict | None], limit: int | None = None) -> dict[float, int | None]:
        """Measure until settled (or ``limit`` runs); ``measure(batch)`` returns the observed row or None (failed)."""
        limit = len(self.grid) if limit is None else limit
        failed: set[int] = set()
        while len(self.measured) + len(failed) < limit:
            b = self.next_batch()
            if b is None or b in failed:
                break
            row = measure(b)
            if row is None or not _usable(row, self.kind):
                failed.add(b)
                self.measured.pop(b, None)
                self.grid = self.grid[self.grid[self.batch] != b].reset_index(drop=True)
                self.__post_init__()
                continue
            self.observe(b, row)
        return self.choices()


def _usable(row: dict, kind: str) -> bool:
    names = [_energy_column(kind), _time_column(kind), "avg_power_watts"]
    names += ["avg_batch_size", "output_throughput_tokens_per_sec"] if kind == "llm" else []
    return all(row.get(n) is not None and np.isfinite(row[n]) and row[n] > 0 for n in names)


class ReplayBackend:
    """Answers a series' measurements from its published rows (the reference as an oracle)."""

    def __init__(self, rows: pd.DataFrame, kind: str):
        self.batch = P.spec_of(kind).batch
        self.rows = {int(r[self.batch]): r.to_dict() for _, r in rows.iterrows()}
        self.calls: list[int] = []

    def __call__(self, batch: int) -> dict | None:
        self.calls.append(batch)
        return self.rows.get(int(batch))


def oracle(
    rows: pd.DataFrame, kind: str, targets: Iterable[float] = ITL_TARGETS_MS
) -> dict[float, tuple[int | None, float]]:
    """True lowest-energy configuration (batch, energy) per target, from all of a series' rows.

    Targets are median ITLs in ms (``inf``: no target; diffusion has only that one); the energy is J per token
    (LLM) or per output (diffusion)."""
    e, t, batch = _energy_column(kind), _time_column(kind), P.spec_of(kind).batch
    out: dict[float, tuple[int | None, float]] = {}
    for target in (tuple(targets) if kind == "llm" else ()) + (math.inf,):
        ok = rows if (kind != "llm" or math.isinf(target)) else rows[rows[t] <= target]
        ok = ok[np.isfinite(ok[e])]
        out[target] = (None, math.inf) if ok.empty else (int(ok.loc[ok[e].idxmin(), batch]), float(ok[e].min()))
    return out


@dataclass
class ReplayedSeries:
    """One series planned against its published rows (:func:`replay_series`): what was measured and chosen, and
    the oracle's answer."""

    kind: str
    order: list[int]  # batches in the order the planner measured them
    chosen: dict[float, int | None]  # per target (median ITL in ms; inf: none), the chosen batch or None
    optimum: dict[float, tuple[int | None, float]]  # per target, the oracle's batch and energy (see :func:`oracle`)
    rows: dict[int, dict]  # the series' published rows by batch

    def targets_within(self, tolerance: float = TOLERANCE) -> int:
        """How many targets the choice settled: its energy within ``tolerance`` (a fraction) of the optimum's, or
        nothing chosen where nothing meets the target."""
        e = _energy_column(self.kind)
        settled = 0
        for target, (best_batch, best_energy) in self.optimum.items():
            b = self.chosen[target]
            if b is None:
                settled += best_batch is None
            else:
                settled += self.rows[b][e] <= best_energy * (1 + tolerance)
        return settled


def replay_series(
    model: P.Fit, rows: pd.DataFrame, kind: str, tolerance: float = TOLERANCE, coverage: float = PLANNER_COVERAGE
) -> ReplayedSeries:
    """Plan one series with ``model``, answering each measurement from the series' published ``rows``."""
    planner = SeriesPlanner(model, rows, tolerance=tolerance, coverage=coverage)
    backend = ReplayBackend(rows, kind)
    chosen = planner.run(backend)
    return ReplayedSeries(kind, list(backend.calls), chosen, oracle(rows, kind), backend.rows)


def replay(
    table: pd.DataFrame,
    kind: str,
    exclude: str = "model",
    tolerance: float = TOLERANCE,
    coverage: float = PLANNER_COVERAGE,
) -> pd.DataFrame:
    """Plan every published series of ``kind`` from a fit that never saw it, answering from its rows.

    ``exclude="model"``: the fit drops every row of the series' base model (a model measured for the first time);
    ``"series"``: only the series itself. The intervals come from the full table's cross-validated errors.
    """
    full = P.fit(table, kind)
    frame = full.frame
    X, Y = full.design.matrix(frame), P.targets(frame, kind)
    normal = P.NormalEquations(X, Y)
    full.calibrated()
    base_model = (frame["base_model_id"] if "base_model_id" in frame else frame["model_id"]).astype(str).to_numpy()
    rows = []
    e = _energy_column(kind)
    for sid in np.unique(full.series):
        mask = full.series == sid
        out = np.flatnonzero(base_model == base_model[mask][0]) if exclude == "model" else np.flatnonzero(mask)
        beta = normal.solve(out)
        keep = np.ones(len(frame), bool)
        keep[out] = False
        sub = P.Fit(
            kind,
            frame[keep],
            full.design,
            beta,
            Y[keep] - X[keep] @ beta,
            full.series[keep],
            full.model_task[keep],
            full.L[keep],
            calibration=full.calibration,
        )
        series_rows = frame[mask]
        result = replay_series(sub, series_rows, kind, tolerance=tolerance, coverage=coverage)
        for target, (true_b, true_e) in result.optimum.items():
            b = result.chosen.get(target)
            got_e = result.rows[b][e] if b is not None else math.inf
            if true_b is None:
                ok = b is None
                gap = 0.0 if ok else math.nan
            else:
                gap = got_e / true_e - 1 if b is not None else math.inf
                ok = b is not None and gap <= tolerance
            rows.append(
                {
                    "series": sid,
                    "task": series_rows["task"].iloc[0],
                    "target_ms": target,
                    "grid": len(series_rows),
                    "measured": len(result.order),
                    "chosen": b,
                    "optimum": true_b,
                    "energy_gap": gap,
                    "within_tolerance": ok,
                }
            )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- real runs through the runner


def _facts_row(cfg: Configuration, gpu_model: str) -> dict:
    row = {
        "model_id": cfg.model,
        "task": cfg.task,
        "gpu_model": gpu_model,
        "num_gpus": cfg.num_gpus,
        "weight_precision": cfg.precision,
        "max_num_seqs": cfg.max_num_seqs,
        "batch_size": cfg.batch_size,
        "inference_steps": cfg.inference_steps,
        "height_pixels": cfg.height,
        "width_pixels": cfg.width,
        "num_frames": cfg.num_frames or 1,
        "ulysses_degree": 1,
        "ring_degree": 1,
    }
    return row


def frontier_order(
    todo: list[tuple[Configuration, str]],
    results_dir: Path | str,
    study: Study,
    gpu_model: str | None,
    out: TextIO | None = None,
) -> Iterator[tuple[Configuration, str]]:
    """Yield ``(cfg, state)`` of ``todo`` in the planner's order, series by series, skipping settled batches.

    After each yield the runner has measured the configuration; its record is read back from the store. Where
    the model cannot predict the series (a GPU or task the published data lack, e.g. a CPU host), the series is
    measured in grid order, with a note.
    """
    import sys

    from harness.measuring import store

    out = out or sys.stdout
    series: dict[tuple, list] = {}
    for cfg, state in todo:
        series.setdefault(_series(cfg), []).append((cfg, state))
    for _key, items in series.items():
        cfgs = {cfg.batch_value: (cfg, state) for cfg, state in items}
        facts = pd.DataFrame([_facts_row(c, gpu_model or "CPU") for c, _ in items])
        facts = P.with_model_facts(facts)
        kind = "llm" if items[0][0].is_llm else "diffusion"
        try:
            model = P.cached_fit("reference", kind)
            if gpu_model not in model.design.gpus or items[0][0].task not in model.design.tasks:
                raise HarnessError(f"no published {kind} data for {gpu_model or 'this host'} on {items[0][0].task}")
            if facts[["total_params_billions", "activated_params_billions"]].isna().any(axis=None):
                raise HarnessError(f"model {items[0][0].model} has no published facts (parameters)")
            planner = SeriesPlanner(model, facts)
        except HarnessError as exc:
            print(f"frontier: {exc}; measuring the whole series in grid order", file=out)
            yield from items
            continue

        # drive the planner step by step, handing each chosen configuration to the runner
        while True:
            b = planner.next_batch()
            if b is None:
                skipped = len(cfgs) - len(planner.measured)
                print(
                    f"frontier: series {items[0][0].label()} settled after {len(planner.measured)} of "
                    f"{len(cfgs)} batches ({skipped} not measured)",
                    file=out,
                )
                break
            cfg, state = cfgs[b]
            yield cfg, state
            _, record = store.result_state(store.run_path(results_dir, study.name, cfg.run_id))
            metrics = (record or {}).get("metrics") or {}
            row = {**facts[facts[planner.batch] == b].iloc[0].to_dict(), **metrics}
            if (record or {}).get("status") == "ok" and _usable(row, kind):
                planner.observe(b, row)
            else:  # failed, skipped or without an energy counter: drop it from the plan
                planner.grid = planner.grid[planner.grid[planner.batch] != b]
                planner.__post_init__()
                cfgs.pop(b)


def _series(cfg: Configuration) -> tuple:
    d = cfg.as_dict()
    d.pop(cfg.batch_knob)
    d.pop("study", None)
    return tuple(sorted((k, repr(v)) for k, v in d.items()))
