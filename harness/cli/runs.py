"""``python -m harness list`` and ``python -m harness show RUN``: the run store as tables and summaries.

Both read :mod:`harness.measuring.store`; neither writes. A run folder whose files fail their checksums is
reported as CORRUPT and the command exits 1.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from harness.config import split_run_id
from harness.errors import HarnessError
from harness.measuring import store
from harness.vocabulary.pricing import DEFAULT_PRICING, TOKENS_PER_MILLION, PricingAssumptions, price_energy
from harness.vocabulary.tasks import OUTPUT_UNIT

CONFIDENCE_LABEL = "95% CI"


def _fmt(value: object, spec: str = ".3g") -> str:
    """``value`` formatted with ``spec``; "-" for None and NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def _validator_checks() -> tuple[str, ...]:
    from harness.measuring.validator import CHECKS

    return CHECKS


def _cmd_list(args: argparse.Namespace) -> int:
    """Print one line per run folder (figures in J/output, J/token, tokens/s); exit 1 when a folder is damaged."""
    frame = store.collect(store.results_folder(args.results), args.study)
    if args.flag:
        wanted = set(args.flag)
        unknown = wanted - set(_validator_checks()) - {"any"}
        if unknown:
            raise HarnessError(f"unknown flag {sorted(unknown)[0]!r} (known: any, {', '.join(_validator_checks())})")
        flags = frame["validation_flags"].fillna("").str.split(";").apply(lambda xs: {x for x in xs if x})
        keep = flags.apply(lambda got: bool(got) if "any" in wanted else bool(got & wanted))
        frame = frame[keep]
        if frame.empty:
            print(f"no runs flagged {', '.join(sorted(wanted))} under {args.results}")
            return 0
    if frame.empty:
        print(f"no runs under {args.results}" + (f"/{args.study}" if args.study else ""))
        return 0
    width = max([12, *(len(str(r)) for r in frame["run_id"])])  # repeats (<id>-r<k>) are longer
    header = (
        f"{'study':16s} {'run id':{width}s} {'status':10s} {'stable':6s} {'model':14s} {'batch':>5s} "
        f"{'J/output':>9s} {'J/token':>9s} {'tok/s':>8s}  note"
    )
    print(header)
    for r in frame.itertuples():
        stable = "yes" if r.is_stable else ("no" if r.status == "ok" else "-")
        if r.status == "corrupt":
            note = f"CORRUPT: {r.problems}"
        elif r.status == "ok":
            note = "" if r.is_stable else (r.unstable_reason or "")
            if r.validation_flags:
                failed = "FAILS validation" if r.validation_passed is False else "flags"
                note = (note + "; " if note else "") + f"{failed}: {r.validation_flags.replace(';', ', ')}"
        else:
            note = r.cause or ""
        batch = r.batch_size if r.batch_size == r.batch_size and r.batch_size is not None else None
        print(
            f"{str(r.study)[:16]:16s} {r.run_id!s:{width}s} {r.status:10s} {stable:6s} {str(r.model_id)[:14]:14s} "
            f"{_fmt(batch, 'g'):>5s} {_fmt(r.energy_per_output_joules):>9s} {_fmt(r.energy_per_token_joules):>9s} "
            f"{_fmt(r.output_throughput_tokens_per_sec if r.output_unit == 'response' else r.throughput_outputs_per_sec):>8s}  {note}"  # noqa: E501
        )
    counts = frame["status"].value_counts()
    print(", ".join(f"{n} {s}" for s, n in counts.items()))
    corrupt = int(counts.get("corrupt", 0))
    if corrupt:
        print(f"warning: {corrupt} run folder(s) fail their checksums; they are left out of findings", flush=True)
        return 1
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    """Print one run's record (times in s, energies in J); exit 1 when its files fail their checksums."""
    run_dir = store.find_run(args.run, args.results)
    record = store.read_record(run_dir)
    problems = store.verify(run_dir)
    if record is None:
        raise HarnessError(f"{run_dir}: run.json is missing or unreadable ({'; '.join(problems) or 'no file'})")
    if args.json:
        print(json.dumps(record, indent=2))
        return 1 if problems and record.get("status") != "incomplete" else 0
    cfg, metrics = record.get("config") or {}, record.get("metrics") or {}
    env = record.get("environment") or {}
    print(f"run        {run_dir}")
    print(f"status     {record.get('status')}" + (f" (cause: {record.get('cause')})" if record.get("cause") else ""))
    if record.get("message"):
        print(f"message    {record['message']}")
    print(
        f"stable     {record.get('is_stable')}"
        + (f" -- {record['unstable_reason']}" if record.get("unstable_reason") else "")
    )
    print(f"integrity  {'ok' if not problems else 'CORRUPT: ' + '; '.join(problems)}")
    print(
        f"host       {env.get('host')}  gpu: {env.get('gpu_count')} x {env.get('gpu_model') or 'none'}  "
        f"git: {str((env.get('git') or {}).get('commit'))[:10]}"
    )
    print(
        f"timing     {record.get('started_at')} .. {record.get('finished_at')}  wall {_fmt(record.get('wall_time_s'), '.1f')} s"  # noqa: E501
    )
    print("config     " + ", ".join(f"{k}={v}" for k, v in cfg.items() if v is not None and v != {}))
    shown = [(k, v) for k, v in metrics.items() if v is not None and k not in SPLIT_SHOWN_APART]
    if shown:
        print("metrics")
        for key, value in shown:
            spec = ".3f" if key.endswith("time_s") else ".6g"
            print(f"  {key:34s} {_fmt(value, spec) if isinstance(value, float) else value}")
    _show_fidelity(run_dir, record)
    _show_energy_split(record, _pricing(args))
    _show_node_and_gpu_settings(record)
    if record.get("log_tail"):
        print("log tail")
        for line in str(record["log_tail"]).splitlines()[-20:]:
            print(f"  {line}")
    return 1 if problems and record.get("status") != "incomplete" else 0


def _interval(ci: list | tuple | None, spec: str = ".4g") -> str:
    return f"[{_fmt(ci[0], spec)}, {_fmt(ci[1], spec)}]" if ci else "-"


def _show_fidelity(run_dir: Path, record: dict) -> None:
    """Validation flags, intervals, window sensitivity, error budget and the repeats of this configuration."""
    validation = record.get("validation")
    if validation:
        verdict = "passed" if validation.get("passed") else "FAILED (" + ", ".join(validation.get("errors")) + ")"
        if validation.get("warnings"):
            verdict += "; warnings: " + ", ".join(validation["warnings"])
        print(f"validation {verdict}")
        for flag in validation.get("checks") or []:
            print(f"  {flag['status']:4s} {flag['severity']:7s} {flag['check']:18s} {flag['reason']}")
    fidelity = record.get("fidelity") or {}
    metrics = record.get("metrics") or {}
    iv = fidelity.get("intervals") or {}
    if iv:
        print(
            f"intervals  {iv.get('method')}, {iv.get('units')} units" + (f" ({iv['note']})" if iv.get("note") else "")
        )
        for key in (
            "energy_per_token_joules",
            "output_throughput_tokens_per_sec",
            "energy_per_output_joules",
            "batch_latency_s",
        ):
            if key in iv:
                print(f"  {key:34s} {_fmt(metrics.get(key), '.4g'):>10s}  {CONFIDENCE_LABEL} {_interval(iv.get(key))}")
    ws = fidelity.get("window_sensitivity") or {}
    if ws:
        print(
            "windows    "
            f"{'window':10s} {'duration s':>10s} {'tokens':>7s} {'J/token':>10s} {'tok/s':>9s}  energy source"
        )
        for name in ("steady", "whole_run", "trimmed"):
            w = ws.get(name)
            if w:
                print(
                    f"           {name:10s} {_fmt(w.get('duration_s'), '.3f'):>10s} {w.get('output_tokens'):>7d} "
                    f"{_fmt(w.get('energy_per_token_joules'), '.4g'):>10s} "
                    f"{_fmt(w.get('output_throughput_tokens_per_sec'), '.4g'):>9s}  {w.get('energy_source')}"
                )
    budget = (fidelity.get("error_budget") or {}).get("items") or {}
    if budget:
        largest = (fidelity.get("error_budget") or {}).get("largest")
        print("error budget (relative)" + (f"; largest: {largest}" if largest else ""))
        for name, item in budget.items():
            rel = item.get("relative")
            print(f"  {name:26s} {(f'{100 * rel:.2f}%' if rel is not None else '-'):>8s}  {item.get('note')}")
    _show_repeats(run_dir, record)


def _show_repeats(run_dir: Path, record: dict) -> None:
    """The repeats of this configuration (``<run-id>-r<k>``) with a Student's t interval per metric."""
    from harness.measuring import repeats

    base, k = split_run_id(record.get("run_id") or run_dir.name)
    siblings = [d for d in sorted(run_dir.parent.iterdir()) if d.is_dir() and split_run_id(d.name)[0] == base]
    if len(siblings) < 2:
        return
    rows = []
    for d in siblings:
        state, rec = store.result_state(d)
        rows.append((d.name, state, (rec or {}).get("metrics") or {}))
    ok = [m for _, state, m in rows if state == "ok"]
    print(
        f"repeats    {len(siblings)} runs of this configuration ({len(ok)} ok; this is repeat {k}): "
        + ", ".join(f"{name} {state}" for name, state, _ in rows)
    )
    for key in repeats.METRICS:
        values = [m.get(key) for m in ok if m.get(key) is not None]
        t = repeats.t_interval(values)
        if t:
            print(
                f"  {key:34s} mean {_fmt(t[0], '.4g'):>10s}  sd {_fmt(t[1], '.3g'):>9s}  "
                f"{CONFIDENCE_LABEL} {_interval(t[2:])}  (n={len(values)}, Student's t)"
            )


SPLIT_SHOWN_APART = frozenset(store.ENERGY_SPLIT_COLUMNS) | {"phase_split_reason"}  # printed by _show_energy_split


def _pricing(args) -> PricingAssumptions:
    """The pricing assumptions of ``show``: the cited defaults, with the values given on the command line."""
    return DEFAULT_PRICING.with_values(
        getattr(args, "grid_intensity", None),
        getattr(args, "electricity_price", None),
        getattr(args, "currency", None),
        getattr(args, "pue", None),
    )


def _share(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _show_energy_split(record: dict, pricing: PricingAssumptions) -> None:
    """Static against dynamic energy, the phase split (run.json's ``energy_split``, written by
    :mod:`harness.analysis.energy_split`) and the run's energy priced under ``pricing`` (J, W, kWh, g, money)."""
    split, metrics = record.get("energy_split"), record.get("metrics") or {}
    if split is None:
        if record.get("status") == "ok":
            print("split      not in run.json (the run was measured before the energy split existed)")
    else:
        sd, ph, req = split.get("static_dynamic") or {}, split.get("phases") or {}, split.get("requests") or {}
        if sd.get("static_energy_fraction") is not None:
            per = (
                ("token", "J/token") if sd.get("static_energy_per_token_joules") is not None else ("output", "J/output")
            )
            line = (
                f"static     idle {_fmt(sd.get('static_power_watts'), '.4g')} W: {_share(sd['static_energy_fraction'])}"
                f" of the GPU energy"
            )
            if sd.get(f"static_energy_per_{per[0]}_joules") is not None:
                line += (
                    f"; {_fmt(sd[f'static_energy_per_{per[0]}_joules'], '.4g')} {per[1]} static, "
                    f"{_fmt(sd[f'dynamic_energy_per_{per[0]}_joules'], '.4g')} {per[1]} dynamic"
                )
            print(line)
        elif sd:
            print(f"static     not split: {sd.get('reason')}")
        if ph.get("reason"):
            print(f"phases     not estimated: {ph['reason']}")
        elif ph:
            shares = ph.get("shares") or {}
            print(
                f"phases     prefill {_fmt(ph.get('prefill_joules_per_token'), '.4g')} J per prompt token "
                f"{_interval(ph.get('prefill_interval'))}, decode {_fmt(ph.get('decode_joules_per_token'), '.4g')} "
                f"J per output token {_interval(ph.get('decode_interval'))} ({CONFIDENCE_LABEL})"
            )
            print(
                f"           of {_fmt(ph.get('energy_joules'), '.4g')} J: static {_share(shares.get('static'))}, "
                f"prefill {_share(shares.get('prefill'))}, decode {_share(shares.get('decode'))}, unexplained "
                f"{_share(shares.get('residual'))} ({ph.get('ticks')} ticks; {ph.get('energy_source')})"
            )
            for note in ph.get("notes") or []:
                print(f"           note: {note}")
        if req.get("static_energy_fraction_median") is not None:
            print(
                f"requests   static share per request: median {_share(req['static_energy_fraction_median'])} "
                f"(10th to 90th percentile {_share(req['static_energy_fraction_p10'])} to "
                f"{_share(req['static_energy_fraction_p90'])}) over {req.get('requests')} requests"
            )
    _show_priced(record, metrics, pricing)


def _show_priced(record: dict, metrics: dict, pricing: PricingAssumptions) -> None:
    task = (record.get("config") or {}).get("task")
    unit = OUTPUT_UNIT.get(task, "output") if task else "output"
    rows = [
        (
            "per million output tokens",
            price_energy(
                None
                if metrics.get("energy_per_token_joules") is None
                else metrics["energy_per_token_joules"] * TOKENS_PER_MILLION,
                pricing,
            ),
        ),
        (f"per {unit}", price_energy(metrics.get("energy_per_output_joules"), pricing)),
    ]
    priced = [(what, p) for what, p in rows if p is not None]
    if not priced:
        if record.get("status") == "ok":
            print(
                f"priced     nothing: no GPU energy was measured ({metrics.get('energy_source') or 'no energy source'})"
            )
        return
    print(f"priced     GPU energy; {pricing.describe()}")
    for what, p in priced:
        print(
            f"  {what:26s} {p.kwh_it:.4g} kWh at the GPUs, {p.kwh_facility:.4g} kWh at the meter, "
            f"{p.grams_co2e:.4g} g CO2e, {p.cost:.4g} {p.currency}"
        )


def _show_node_and_gpu_settings(record: dict) -> None:
    """CPU package and DRAM energy beside the GPU's (or why they are null), and the power cap or locked clock
    the run was measured under, each GPU's original and whether it was restored."""
    from harness.measuring import node

    for line in node.show_lines(record.get("metrics") or {}):
        print(line)
    settings = record.get("gpu_settings")
    if not settings:
        return
    asked = ", ".join(
        f"{k}={settings[k]:g}" for k in ("power_limit_watts", "sm_clock_mhz") if settings.get(k) is not None
    )
    restored = {
        True: "restored after the run",
        False: "NOT restored: "
        + "; ".join(settings.get("restore_problems") or ["see the state file"])
        + f" ({settings.get('state_file')})",
    }
    print(f"gpu        {asked}; {restored.get(settings.get('restored'), 'restore not recorded')}")
    for index, gpu in sorted((settings.get("gpus") or {}).items()):
        parts = []
        if "power_limit_watts" in gpu:
            parts.append(
                f"power limit {_fmt(gpu.get('power_limit_watts'), 'g')} W (enforced "
                f"{_fmt(gpu.get('enforced_power_limit_watts'), 'g')} W; original "
                f"{_fmt(gpu.get('original_power_limit_watts'), 'g')} W)"
            )
        if gpu.get("sm_clock_locked_mhz"):
            low, high = gpu["sm_clock_locked_mhz"]
            parts.append(f"SM clock locked {low}..{high} MHz (unlocked after)")
        print(f"  GPU {index} {gpu.get('uuid')}: {'; '.join(parts)}")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``list`` and ``show`` to the command line."""
    p = sub.add_parser(
        "list",
        help="table of measured runs with status and key figures",
        description="List run folders under the results directory with their status, stability "
        "and key figures. Folders whose files fail their checksums are flagged "
        "CORRUPT (exit code 1).",
    )
    p.add_argument("--results", default="results", help="results directory (default: results)")
    p.add_argument("--study", help="only this study")
    p.add_argument(
        "--flag",
        action="append",
        metavar="CHECK",
        help="only runs that failed this reference-validator check (repeatable; 'any' for any flag), "
        "e.g. steady-duration, temperature, output-length-cap",
    )
    p.set_defaults(func=_cmd_list)
    p = sub.add_parser(
        "show",
        help="print one run's summary",
        description="Print a run's status, validity flags, integrity, config and summary metrics.",
    )
    p.add_argument("run", metavar="RUN", help="a run id (or its prefix) or a run folder path")
    p.add_argument("--results", default="results", help="results directory searched for run ids (default: results)")
    p.add_argument("--json", action="store_true", help="print run.json as stored")
    p.add_argument(
        "--grid-intensity",
        type=float,
        metavar="G",
        help=f"grams of CO2e per kWh of the grid (default {DEFAULT_PRICING.grid_intensity_grams_per_kwh:g}, "
        "the 2022 world average, Ember)",
    )
    p.add_argument(
        "--electricity-price",
        type=float,
        metavar="P",
        help=f"price of one kWh (default {DEFAULT_PRICING.price_per_kwh:g} USD, US industrial 2023, EIA)",
    )
    p.add_argument("--currency", metavar="CODE", help="currency of --electricity-price (default USD)")
    p.add_argument(
        "--pue",
        type=float,
        metavar="X",
        help=f"facility energy over IT energy (default {DEFAULT_PRICING.pue:g}, Uptime Institute 2023)",
    )
    p.set_defaults(func=_cmd_show)
