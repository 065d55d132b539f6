"""The harness's own runs beside the published ones: tables for the chapter "Your measurements".

Own runs name architectures (``llama-3.1-8b``); the reference names models
(``meta-llama/Llama-3.1-8B-Instruct``). :func:`own_runs` adds each run's
``reference_model_id`` -- the published model with the same architecture, from
the architecture file -- so :func:`reference_counterparts` can pick the
published curves for the same architecture, task and GPU model. Tiny CPU
architectures have no counterpart; a CPU has none either.

All functions take and return DataFrames (analysis never reads files, except
:func:`own_runs`, which collects the run folders).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.vocabulary.tasks import LLM_TASKS

KEY_METRICS = {
    "llm": [
        "output_throughput_tokens_per_sec",
        "median_itl_ms",
        "avg_batch_size",
        "avg_output_len",
        "energy_per_token_joules",
        "energy_per_output_joules",
        "avg_power_watts",
        "steady_duration_s",
    ],
    "diffusion": ["batch_latency_s", "throughput_outputs_per_sec", "energy_per_output_joules", "avg_power_watts"],
}


def result_roots(results_dir: str | Path) -> list[Path]:
    """Folders that hold ``<study>/<run-id>/run.json`` below ``results_dir`` (e.g. ``results`` itself for
    ``make measure`` and ``results/H100`` for a committed gpu-check)."""
    root = Path(results_dir)
    if not root.is_dir():
        return []
    found = {p.parent.parent.parent for p in root.glob("**/run.json") if len(p.relative_to(root).parts) <= 5}
    return sorted(found)


def _reference_model(model: str, task: str) -> str | None:
    from harness.workloads import archs

    try:
        return archs.get(model).reference_model(task)
    except Exception:  # noqa: BLE001 -- an architecture this checkout no longer knows
        return None


def _length_source(run_dir) -> str | None:
    """The published model whose output-length histogram a run drew from (recorded by the LLM backends)."""
    from harness.measuring import store

    record = store.read_record(Path(run_dir)) or {}
    lengths = (record.get("backend_info") or {}).get("lengths") or {}
    return (lengths.get("extra") or {}).get("length_source_model")


def own_runs(results_dir: str | Path) -> pd.DataFrame:
    """Every own run folder below ``results_dir`` (any status), with ``reference_model_id``, ``is_llm`` and
    ``committed`` (True for a run in a folder below ``results_dir``, committed with the repository, not measured
    into ``results_dir/<study>/`` here); its ``series`` label says "committed" for those."""
    from harness.measuring import store

    base = Path(results_dir).resolve()
    # a run committed with the repository (a folder below results_dir, e.g. the project's CPU runs or a GPU check)
    # is told apart from one measured here (results_dir/<study>/<run-id>): their series may otherwise share a label
    frames = [store.collect(root).assign(committed=root.resolve() != base) for root in result_roots(results_dir)]
    frames = [f for f in frames if len(f)]
    if not frames:
        frame = store.collect(Path(results_dir) / ".none").assign(committed=False)  # the empty table, every column
    else:
        frame = pd.concat(frames, ignore_index=True).drop_duplicates("run_dir")
    frame = frame.copy()
    frame["reference_model_id"] = [
        _reference_model(m, t) if isinstance(m, str) and isinstance(t, str) else None
        for m, t in zip(frame["model_id"], frame["task"], strict=False)
    ]
    frame["length_source_model"] = [_length_source(d) for d in frame["run_dir"]]
    frame["is_llm"] = frame["task"].isin(LLM_TASKS)
    frame["nickname"] = frame["model_id"].astype(str) + " (own)"
    # the backend is named only for a model measured through more than one (the label stays short enough for a legend)
    backends = frame.groupby("model_id")["backend"].transform("nunique") if len(frame) else frame["backend"]
    own = [
        " ("
        + ", ".join(["own"] + (["committed"] if c else []) + ([b] if isinstance(n, (int, float)) and n > 1 else []))
        + "), "
        for b, n, c in zip(frame["backend"], backends, frame["committed"], strict=True)
    ]
    frame["series"] = (
        frame["model_id"].astype(str)
        + pd.Series(own, index=frame.index, dtype=object)
        + frame["task"].astype(str).map(_task_name)
        + ", "
        + frame["gpu"].astype(str)
    )
    return frame


def status_counts(own: pd.DataFrame) -> pd.DataFrame:
    """Runs per study, task and status; failed and skipped ones with their causes."""
    if own.empty:
        return pd.DataFrame(columns=["study", "task", "status", "runs", "causes"])
    own = own.copy()
    if "problems" in own:  # a damaged run's cause is the file that fails its checksum
        damaged = own["status"] == "corrupt"
        own.loc[damaged, "cause"] = "damaged: " + own.loc[damaged, "problems"].astype(str)
    grouped = own.groupby(["study", "task", "status"], dropna=False)
    out = grouped.size().rename("runs").reset_index()
    causes = grouped["cause"].agg(lambda s: "; ".join(sorted({str(c) for c in s.dropna() if str(c)})))
    return out.merge(causes.rename("causes").reset_index(), on=["study", "task", "status"])


def reference_counterparts(own: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Published rows for the same architecture, task, GPU model and GPU count as some own run."""
    ok = own[(own["status"] == "ok") & own["reference_model_id"].notna()]
    if ok.empty or reference.empty:
        return reference.iloc[0:0].copy()
    keys = ok[["reference_model_id", "task", "gpu_model", "num_gpus"]].drop_duplicates()
    keys = keys.rename(columns={"reference_model_id": "model_id"})
    keys["num_gpus"] = keys["num_gpus"].astype(float)
    ref = reference.assign(num_gpus=reference["num_gpus"].astype(float))
    matched = ref.merge(keys, on=["model_id", "task", "gpu_model", "num_gpus"], how="inner")
    matched["series"] = (
        matched["nickname"].fillna(matched["model_id"])
        + " (published), "
        + matched["task"].map(_task_name)
        + ", "
        + matched["gpu"]
    )
    return matched


def side_by_side(own: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Own runs next to the published run of the same architecture, task, GPU model, GPU count and batch size,
    with own / published ratios of the key metrics (only where both exist)."""
    counterparts = reference_counterparts(own, reference)
    ok = own[(own["status"] == "ok") & own["reference_model_id"].notna()].copy()
    if ok.empty or counterparts.empty:
        return pd.DataFrame()
    ok["num_gpus"] = ok["num_gpus"].astype(float)
    ok["batch_size"] = ok["batch_size"].astype(float)
    counterparts = counterparts.assign(batch_size=counterparts["batch_size"].astype(float))
    metrics = [
        m for m in KEY_METRICS["llm"] + KEY_METRICS["diffusion"] if m in ok.columns and m in counterparts.columns
    ]
    metrics = list(dict.fromkeys(metrics))
    left = ok[
        ["run_id", "model_id", "reference_model_id", "task", "gpu", "gpu_model", "num_gpus", "batch_size", *metrics]
    ]
    right = counterparts[["model_id", "task", "gpu_model", "num_gpus", "batch_size", *metrics]].rename(
        columns={"model_id": "reference_model_id", **{m: f"published_{m}" for m in metrics}}
    )
    both = left.merge(right, on=["reference_model_id", "task", "gpu_model", "num_gpus", "batch_size"], how="inner")
    for m in metrics:
        both[f"ratio_{m}"] = both[m] / both[f"published_{m}"]
    return both


def length_ratio(own: pd.DataFrame, reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """Mean output length of reasoning against chat runs of the same model (own runs that succeeded).

    With ``reference``, also the published ratio of the models whose histograms the runs drew their
    lengths from (when all runs of a task used one source), averaged over their published runs.
    """
    ok = own[(own["status"] == "ok") & own["task"].isin(["lm-arena-chat", "gpqa"])]
    if ok.empty:
        return pd.DataFrame(columns=["model_id", "chat_avg_output_len", "gpqa_avg_output_len", "ratio"])
    means = ok.groupby(["model_id", "task"])["avg_output_len"].mean().unstack()
    if not {"lm-arena-chat", "gpqa"} <= set(means.columns):
        return pd.DataFrame(columns=["model_id", "chat_avg_output_len", "gpqa_avg_output_len", "ratio"])
    means = means.dropna(subset=["lm-arena-chat", "gpqa"])
    out = pd.DataFrame(
        {
            "model_id": means.index,
            "chat_avg_output_len": means["lm-arena-chat"].to_numpy(),
            "gpqa_avg_output_len": means["gpqa"].to_numpy(),
            "ratio": (means["gpqa"] / means["lm-arena-chat"]).to_numpy(),
        }
    )
    if reference is not None and len(reference):
        published = reference.groupby(["model_id", "task"])["avg_output_len"].mean()
        chat_src, gpqa_src, pub = [], [], []
        for model in out["model_id"]:
            sources = []
            for task in ("lm-arena-chat", "gpqa"):
                used = ok.loc[(ok["model_id"] == model) & (ok["task"] == task), "length_source_model"].dropna()
                sources.append(used.mode().iloc[0] if len(used) and used.nunique() == 1 else None)
            chat_src.append(sources[0])
            gpqa_src.append(sources[1])
            a, b = published.get((sources[1], "gpqa")), published.get((sources[0], "lm-arena-chat"))
            pub.append(a / b if a is not None and b is not None else None)
        out["chat_length_source"], out["gpqa_length_source"], out["published_ratio"] = chat_src, gpqa_src, pub
    return out


# A tiny CPU architecture is a scaled-down copy of a full-size one; its trends (how a metric changes with the
# batch) are compared with the published curve of that full-size architecture's model.
FULL_SIZE = {
    "tiny-qwen3": "qwen3-8b",
    "tiny-llama": "llama-3.1-8b",
    "tiny-qwen3-moe": "qwen3-30b-a3b",
    "tiny-sd3": "sd3.5-medium",
    "tiny-flux": "flux.1-dev",
    "tiny-wan": "wan2.1-t2v-1.3b",
}
TREND_METRICS = {"llm": "output_throughput_tokens_per_sec", "diffusion": "throughput_outputs_per_sec"}
RELATIVE = "relative_to_smallest_batch"  # a ratio: no unit


def _task_name(task: str) -> str:
    from harness.published.reference import TASK_NAMES

    return TASK_NAMES.get(task, task).lower()


def trend_model(model: str, task: str) -> str | None:
    """The published model whose curve an own run's trend is compared with: its architecture's, or the
    full-size architecture's for a tiny one."""
    return _reference_model(model, task) or (_reference_model(FULL_SIZE[model], task) if model in FULL_SIZE else None)


def relative_trends(own: pd.DataFrame, reference: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Own series and their published counterparts' series, each divided by its value at its own smallest batch.

    A CPU run cannot be compared with a GPU run in absolute terms, but how throughput grows with the batch can
    be: both are put on one axis, :data:`RELATIVE` (1 at each series' smallest batch). Published series:
    the counterpart model on the same task, on the GPU model and GPU count with the most batch sizes."""
    column = RELATIVE
    ok = own[(own["status"] == "ok")].dropna(subset=[metric]) if metric in own.columns else own.iloc[0:0]
    parts = []
    for _series, g in ok.groupby("series"):
        if g["batch_size"].nunique() < 2:
            continue
        base = g.loc[g["batch_size"].idxmin(), metric]
        if base and base > 0:
            parts.append(g.assign(**{column: g[metric] / base, "origin": "own"}))
    keys = {(trend_model(m, t), t) for m, t in zip(ok["model_id"], ok["task"], strict=False)} - {
        (None, t) for t in ok["task"]
    }
    for model_id, task in sorted(keys, key=str):
        ref = reference[(reference["model_id"] == model_id) & (reference["task"] == task)].dropna(subset=[metric])
        if ref.empty or metric not in ref.columns:
            continue
        counts = ref.groupby(["gpu_model", "num_gpus"])["batch_size"].nunique().reset_index()
        counts["one_gpu"] = counts["num_gpus"] == 1  # one GPU first, as a CPU run uses one device
        best = counts.sort_values(["one_gpu", "batch_size", "gpu_model"], ascending=False).iloc[0]
        g = ref[(ref["gpu_model"] == best["gpu_model"]) & (ref["num_gpus"] == best["num_gpus"])]
        # one point per batch size: the parallel layout that got the most out of it
        g = g.sort_values(metric, ascending=False).drop_duplicates("batch_size").sort_values("batch_size")
        base = g.iloc[0][metric]
        if base and base > 0 and len(g) > 1:
            name = g["nickname"].fillna(g["model_id"]).iloc[0]
            parts.append(
                g.assign(
                    **{
                        column: g[metric] / base,
                        "origin": "published",
                        "series": f"{name} (published), {_task_name(task)}, {g['gpu'].iloc[0]}",
                    }
                )
            )
    if not parts:
        return pd.DataFrame(columns=["series", "batch_size", metric, column, "origin"])
    return pd.concat(parts, ignore_index=True)


def with_intervals(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per own configuration (the mean of its repeats) and every published row, with the interval
    columns ``<metric>_low`` / ``<metric>_high`` and ``interval_kind`` (:func:`harness.measuring.repeats.with_intervals`)."""  # noqa: E501
    from harness.measuring import repeats

    return repeats.with_intervals(frame, metric)


WINDOWS = {"steady": "steady state", "whole_run": "whole run", "trimmed": "without first and last 10% of requests"}


def window_sensitivity(own: pd.DataFrame) -> pd.DataFrame:
    """Per own LLM run that finished: energy per token (or output throughput where no energy was measured) under
    the steady window, the whole run and the run without its first and last 10% of requests, and the ratio of
    each to the steady figure."""
    ok = own[(own["status"] == "ok") & own["is_llm"]] if len(own) else own
    rows = []
    for r in ok.itertuples():
        energy = [
            r.energy_per_token_joules,
            r.energy_per_token_whole_run_joules,
            r.energy_per_token_trimmed_joules,
        ]
        rate = [
            r.output_throughput_tokens_per_sec,
            r.output_throughput_whole_run_tokens_per_sec,
            r.output_throughput_trimmed_tokens_per_sec,
        ]
        measured = energy[0] == energy[0] and energy[0] is not None
        values = energy if measured else rate
        unit = "energy per token (J)" if measured else "output throughput (tokens/s)"
        row = {"run": r.run_id, "series": r.series, "batch": r.batch_size, "figure": unit}
        for (_name, title), value in zip(WINDOWS.items(), values, strict=False):
            row[title] = value
        for title in list(WINDOWS.values())[1:]:
            row[f"{title} / steady"] = row[title] / values[0] if values[0] and row[title] == row[title] else None
        rows.append(row)
    return pd.DataFrame(
        rows,
        columns=[
            "run",
            "series",
            "batch",
            "figure",
            *WINDOWS.values(),
            *(f"{t} / steady" for t in list(WINDOWS.values())[1:]),
        ],
    )


def ttft_table(own: pd.DataFrame) -> pd.DataFrame:
    """Time to first token (mean, median, p90, p99, in ms) of every own LLM run that finished."""
    ok = own[(own["status"] == "ok") & own["is_llm"]] if len(own) else own
    cols = {
        "mean_ttft_ms": "mean TTFT (ms)",
        "median_ttft_ms": "median TTFT (ms)",
        "p90_ttft_ms": "p90 TTFT (ms)",
        "p99_ttft_ms": "p99 TTFT (ms)",
    }
    out = ok[["run_id", "series", "batch_size", *cols]].rename(columns={"run_id": "run", "batch_size": "batch", **cols})
    return out.reset_index(drop=True)
