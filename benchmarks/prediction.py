"""Benchmark 5: how well the energy model predicts configurations it never saw, on the published data.

    .venv/bin/python benchmarks/prediction.py

Four held-out splits of the reference (harness.analysis.predict.validation_table): leave one batch out inside a
series (interpolation), leave one GPU count out, leave one model out (all precisions of a base model; predicted
from its facts alone), and H100 -> B200 (a model's B200 rows held out, its H100 rows kept). Per split and task
family: median and 90th-percentile absolute relative error of energy per token (per image or video for
diffusion), and the share of held-out points inside the 80% interval (jackknife-style: the interval of a held-out
group is made from the other groups' errors).

Goals (issue 14): interpolation median <= 5%; leave-one-model-out median <= 20%; 80% intervals cover >= 75%.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

NAME = "prediction"
GOALS = {"batch_median": 0.05, "model_median": 0.20, "coverage": 0.75}


def main() -> int:
    _common.ensure_reference_env()
    load = _common.loadavg()
    watch = _common.Stopwatch()
    from harness.analysis import predict
    from harness.published import reference

    table = predict.validation_table(reference.all_table())
    overall = table[table["family"].str.startswith("all ")]
    checks = []
    for kind in ("llm", "diffusion"):
        rows = overall[overall["family"] == f"all {kind}"].set_index("split")
        checks.append((f"{kind} interpolation median", rows.at["batch", "median_abs_rel_error"], GOALS["batch_median"]))
        checks.append(
            (f"{kind} leave-one-model-out median", rows.at["model", "median_abs_rel_error"], GOALS["model_median"])
        )
    coverage_min = float(overall["coverage"].min())
    verdicts = [{"check": name, "value": float(v), "goal": f"<= {g:.0%}", "met": bool(v <= g)} for name, v, g in checks]
    verdicts.append(
        {
            "check": "lowest 80% interval coverage over splits",
            "value": coverage_min,
            "goal": f">= {GOALS['coverage']:.0%}",
            "met": coverage_min >= GOALS["coverage"],
        }
    )
    ok = all(v["met"] for v in verdicts)
    by = {v["check"]: v["value"] for v in verdicts}
    figure = (
        f"interpolation median {by['llm interpolation median']:.1%} (LLM) / "
        f"{by['diffusion interpolation median']:.1%} (diffusion); leave-one-model-out median "
        f"{by['llm leave-one-model-out median']:.1%} / {by['diffusion leave-one-model-out median']:.1%}; "
        f"80% interval coverage >= {coverage_min:.1%} in every split"
    )
    payload = {
        "benchmark": NAME,
        "figure": figure,
        "status": _common.status(ok),
        "goal": "interpolation median <= 5%, leave-one-model-out median <= 20%, 80% intervals cover >= 75%",
        "command": ".venv/bin/python benchmarks/prediction.py",
        "checks": verdicts,
        "table": table.to_dict(orient="records"),
        "benchmark_wall_s": watch(),
        "host": _common.host_facts(load),
    }
    path = _common.write_result(NAME, payload)
    print(f"{NAME}: {figure} -> {payload['status']}  ({path.relative_to(_common.ROOT)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
