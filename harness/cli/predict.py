"""``python -m harness predict SELECTOR``: predicted time and energy of a configuration, with intervals."""

from __future__ import annotations

import argparse
import json

UNITS = {
    "energy_per_token_joules": "J/token",
    "energy_per_request_joules": "J/response",
    "energy_per_output_joules": "J/output",
    "avg_power_watts": "W",
    "median_itl_ms": "ms",
    "output_throughput_tokens_per_sec": "tokens/s",
    "avg_batch_size": "requests running",
    "batch_latency_s": "s",
    "throughput_outputs_per_sec": "outputs/s",
}
LEVEL_TEXT = {
    "series": "measured batches of this series in the fit",
    "model": "other GPU counts or GPUs of this model in the fit",
    "facts": "the model's facts alone (the fit never saw it)",
}


def _cmd_predict(args: argparse.Namespace) -> int:
    from harness.analysis import predict

    source = args.fit or "reference"
    out = predict.predict_selector(args.selector, source, coverage=args.coverage)
    if args.json:
        print(json.dumps(out, indent=2, default=str))
        return 0
    pct = round(100 * args.coverage)
    print(f"prediction for {args.selector} (fit: {source}; from {LEVEL_TEXT[out['level']]}; {pct}% intervals)")
    for name, unit in UNITS.items():
        if name in out:
            print(f"  {name:34s} {out[name]:>12.4g}  [{out[name + '_low']:.4g} .. {out[name + '_high']:.4g}] {unit}")
    exp = out.get("explanation")
    if exp:
        print(f"  against the nearest measured configuration, {exp['against']}:")
        for f in exp["factors"]:
            print(f"    {f['factor']:34s} x{f['ratio']:.3g}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``predict`` command to the command line's sub-commands."""
    p = sub.add_parser(
        "predict",
        help="predict energy, power, latency and throughput of a configuration",
        description="Predict a configuration's energy per token (per image or video for diffusion), "
        "average power, median ITL and throughput, each with an interval, from the "
        "structural model fitted on the published data or on own runs.",
    )
    p.add_argument(
        "selector",
        metavar="SELECTOR",
        help="facts as key=value: model=ID (or total=B,active=B,precision=bfloat16|fp8|mxfp4), task=, "
        "gpu=H100|B200, gpus=N, max_num_seqs=N (LLM) or batch=N (diffusion)",
    )
    p.add_argument(
        "--fit",
        metavar="reference|DIR|TABLE.csv",
        help="what the model is fitted on: the published data (default), a results folder or a CSV",
    )
    p.add_argument("--coverage", type=float, default=0.8, help="interval coverage (default 0.8)")
    p.add_argument("--json", action="store_true", help="the predicted quantities as JSON, reference column names")
    p.set_defaults(func=_cmd_predict)
