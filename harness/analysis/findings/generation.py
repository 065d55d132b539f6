"""The diffusion findings: the spread of the lowest energy per image, and the range of the lowest energy per
video (against images), each model at its cheapest configuration; energies in J per image or per video."""

from __future__ import annotations

from typing import Any

import pandas as pd

from harness.analysis import paper as P
from harness.analysis.findings.record import Finding
from harness.analysis.findings.wording import (
    energy_text,
    nickname,
    percent_text,
    ratio_text,
)
from harness.analysis.tables.columns import ENERGY_PER_OUTPUT as E_OUTPUT
from harness.analysis.tables.frontiers import min_energy_configs


def diffusion_minima(diffusion: pd.DataFrame, task: str, gpu: str) -> pd.DataFrame:
    """Per model, the lowest-energy configuration of one diffusion task on one GPU model, cheapest first
    (energy per output in J, batch latency in s)."""
    s = diffusion[(diffusion["task"] == task) & (diffusion["gpu_model"] == gpu)]
    best = min_energy_configs(s, by=("model_id",))
    return (
        best[
            [
                "model_id",
                "nickname",
                "num_gpus",
                "batch_size",
                "ulysses_degree",
                "ring_degree",
                E_OUTPUT,
                "batch_latency_s",
            ]
        ]
        .sort_values(E_OUTPUT)
        .reset_index(drop=True)
    )


def _h100_check(diffusion: pd.DataFrame, task: str) -> tuple[dict[str, dict[str, float]], bool]:
    """The task's H100 minima against the paper's orders of magnitude (:func:`harness.analysis.paper
    .order_of_magnitude_check`)."""
    mins = diffusion_minima(diffusion, task, "H100").set_index("model_id")[E_OUTPUT]
    return P.order_of_magnitude_check({str(model): float(joules) for model, joules in mins.items()})


def _h100_published(check: dict[str, dict[str, float]]) -> dict[str, float]:
    """The paper's H100 minima (J) of the models the check compared."""
    return {model: c["published_joules"] for model, c in check.items()}


def _h100_pairs(diffusion: pd.DataFrame, check: dict[str, dict[str, float]]) -> str:
    return ", ".join(
        f"{nickname(diffusion, m)} {energy_text(c['computed_joules'])} vs {energy_text(c['published_joules'])}"
        for m, c in check.items()
    )


def text_to_image_spread(llm: pd.DataFrame, diffusion: pd.DataFrame) -> Finding:
    """Text to image on B200: the lowest energy per image (J) of each model, and the spread dearest over
    cheapest; the H100 minima against the paper's orders of magnitude."""
    table = diffusion_minima(diffusion, "text-to-image", "B200")
    lo, hi = table.iloc[0], table.iloc[-1]
    values: dict[str, Any] = {
        "models": len(table),
        "min_energy_per_image_joules": float(lo[E_OUTPUT]),
        "min_model": lo["model_id"],
        "max_energy_per_image_joules": float(hi[E_OUTPUT]),
        "max_model": hi["model_id"],
        "spread": float(hi[E_OUTPUT] / lo[E_OUTPUT]),
    }
    check, within = _h100_check(diffusion, "text-to-image")
    values["h100_check"] = check
    summary = (
        f"On B200 the lowest energy per image ranges from {energy_text(values['min_energy_per_image_joules'])} "
        f"({lo['nickname']}) to {energy_text(values['max_energy_per_image_joules'])} ({hi['nickname']}) over "
        f"{values['models']} models: a {ratio_text(values['spread'])} spread."
    )
    paper = P.claim("text-to-image-spread") | {"h100_min_energy_joules": _h100_published(check)}
    comparison = (
        f"H100 per-model minima {'match' if within else 'do not match'} the paper's orders of magnitude "
        f"within {percent_text(P.ORDER_OF_MAGNITUDE_TOLERANCE)} ({_h100_pairs(diffusion, check)})."
    )
    filters = {
        "task": "text-to-image",
        "gpu_model": "B200",
        "selection": "per model, the lowest energy per image over GPU counts, batch sizes and parallel degrees",
    }
    return Finding(
        id="text-to-image-spread",
        title="Text to image: spread of the lowest energy per image",
        values=values,
        filters=filters,
        method="Per-model minimum energy per image; spread = max / min.",
        paper=paper,
        comparison=comparison,
        summary=summary,
        rows=table,
    )


def text_to_video_range(llm: pd.DataFrame, diffusion: pd.DataFrame) -> Finding:
    """Text to video on B200: the lowest energy per video (J) of each model, its range, and the dearest video
    against the B200 image minima; the H100 minima against the paper's orders of magnitude."""
    table = diffusion_minima(diffusion, "text-to-video", "B200")
    images = diffusion_minima(diffusion, "text-to-image", "B200")
    lo, hi = table.iloc[0], table.iloc[-1]
    values: dict[str, Any] = {
        "models": len(table),
        "min_energy_per_video_joules": float(lo[E_OUTPUT]),
        "min_model": lo["model_id"],
        "max_energy_per_video_joules": float(hi[E_OUTPUT]),
        "max_model": hi["model_id"],
        "range": float(hi[E_OUTPUT] / lo[E_OUTPUT]),
    }
    if len(images):
        values["dearest_video_over_dearest_image"] = float(hi[E_OUTPUT] / images[E_OUTPUT].max())
        values["dearest_video_over_cheapest_image"] = float(hi[E_OUTPUT] / images[E_OUTPUT].min())
        values["cheapest_video_over_dearest_image"] = float(lo[E_OUTPUT] / images[E_OUTPUT].max())
    check, _ = _h100_check(diffusion, "text-to-video")
    values["h100_check"] = check
    summary = (
        f"On B200 the lowest energy per video ranges from {energy_text(values['min_energy_per_video_joules'])} "
        f"({lo['nickname']}) to {energy_text(values['max_energy_per_video_joules'])} ({hi['nickname']}), "
        f"a {ratio_text(values['range'])} range; the dearest video costs "
        f"{ratio_text(values['dearest_video_over_dearest_image'])} the dearest image and "
        f"{ratio_text(values['dearest_video_over_cheapest_image'])} the cheapest."
    )
    paper = P.claim("text-to-video-range") | {"h100_min_energy_joules": _h100_published(check)}
    comparison = (
        f"The dearest video is {ratio_text(values['dearest_video_over_dearest_image'])} even the dearest "
        f"image (paper: more than 100x); H100 minima {_h100_pairs(diffusion, check)}."
    )
    filters = {
        "task": "text-to-video",
        "gpu_model": "B200",
        "selection": "per model, the lowest energy per video over GPU counts, batch sizes and parallel degrees",
    }
    return Finding(
        id="text-to-video-range",
        title="Text to video: range of the lowest energy per video",
        values=values,
        filters=filters,
        method="Per-model minimum energy per video; range = max / min; compared with the B200 image minima.",
        paper=paper,
        comparison=comparison,
        summary=summary,
        rows=table,
    )
