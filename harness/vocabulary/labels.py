"""Metric labels: what a reader sees for a column, its unit read from the name (``energy_per_token_joules``
-> "Energy per token (J)"). Charts, tooltips and prose take every label from here."""

from __future__ import annotations

_UNITS = (
    ("_tokens_per_sec_per_watt", "tokens/s/W"),
    ("_tokens_per_sec", "tokens/s"),
    ("_outputs_per_sec", "outputs/s"),
    ("_images_per_sec", "images/s"),
    ("_videos_per_sec", "videos/s"),
    ("_per_sec", "/s"),
    ("_joules", "J"),
    ("_watts", "W"),
    ("_ms", "ms"),
    ("_s", "s"),
    ("_billions", "billion"),
    ("_pixels", "px"),
    ("_celsius", "°C"),
    ("_percent", "%"),
    ("_bytes", "B"),
    ("_gib", "GiB"),
    ("_kwh", "kWh"),
    ("_grams_co2e", "g CO2e"),
    ("_usd", "USD"),
    ("_eur", "EUR"),
    ("_gbp", "GBP"),
)
_WORDS = {
    "itl": "ITL",
    "ttft": "TTFT",
    "gpu": "GPU",
    "gpus": "GPUs",
    "p90": "P90",
    "p95": "P95",
    "p99": "P99",
    "it": "IT",
}
_LABELS = {
    "nickname": "Model",
    "model_id": "Model",
    "gpu": "GPU",
    "gpu_model": "GPU",
    "num_gpus": "GPUs",
    "max_num_seqs": "Batch size (max_num_seqs)",
    "repeats": "Repeats (runs)",
    "relative_to_smallest_batch": "Relative to the smallest batch (ratio)",
    "avg_output_len": "Mean output length (tokens)",
    "energy_per_output_joules": "Energy per output (J)",
    "tokens_per_sec_per_watt": "Throughput per watt (tokens/s/W)",
    # the two sides of a comparison (harness.analysis.tables): energy in J whatever the output
    "energy_a": "Energy of A (J)",
    "energy_b": "Energy of B (J)",
    "config_a": "Configuration A",
    "config_b": "Configuration B",
    # columns the chapters derive for a chart
    "task_name": "Task",
    "giga_step_pixel_frames": "Work per video (billion step-pixel-frames)",
    "energy_saved_by_b200_percent": "Energy B200 saves against H100 (%)",
    "fp8_over_bf16_energy_per_token": "FP8 / BF16, energy per token",
    "fp8_over_bf16_itl": "FP8 / BF16, median ITL",
    "static_power_share": "Floor share of power",
    "largest_batch_size": "Largest batch size reached",
    "share_of_responses": "Share of responses",
    "weight_precision": "Precision",
    "family": "Kind of work",
    "activated_params_billions": "Active parameters (billion)",
    "total_params_billions": "Parameters (billion)",
    "avg_power_watts": "Average power (W)",
    "avg_batch_size": "Requests running (mean)",
    "batch_latency_s": "Time per batch (s)",
    "output_throughput_tokens_per_sec": "Output throughput (tokens/s)",
}

# What a reader sees for a column's values (internal spellings -> words), where they differ.
_VALUE_NAMES: dict[str, dict[str, str]] = {
    "weight_precision": {"bfloat16": "BF16", "float16": "FP16", "float32": "FP32", "fp8": "FP8", "mxfp4": "MXFP4"},
    "family": {"llm": "Language models", "text-to-image": "Text to image", "text-to-video": "Text to video"},
}


def value_names(column: str) -> dict[str, str]:
    """Internal value -> reader's word for ``column`` (``weight_precision``: ``fp8`` -> ``FP8``); empty if none."""
    return _VALUE_NAMES.get(column, {})


def unit(column: str) -> str | None:
    """The unit carried by a column name (``energy_per_token_joules`` -> ``J``), or None."""
    for suffix, name in _UNITS:
        if column.endswith(suffix) or column == suffix[1:]:
            return name
    return None


_BOUNDS = {"_low": "interval low", "_high": "interval high"}  # an interval's ends, beside the metric they bound


def label(column: str) -> str:
    """A reader's title for a column: words from its name, the unit in parentheses (the ends of a metric's interval,
    ``<metric>_low`` and ``<metric>_high``, as the metric's words and unit)."""
    if column in _LABELS:
        return _LABELS[column]
    for suffix, bound in _BOUNDS.items():
        if column.endswith(suffix) and unit(column[: -len(suffix)]) is not None:
            base = label(column[: -len(suffix)])
            stem, _, rest = base.partition(" (")
            return f"{stem}, {bound} ({rest}" if rest else f"{stem}, {bound}"
    stem, name = column, unit(column)
    if name is not None:
        suffix = next(s for s, u in _UNITS if column.endswith(s) or column == s[1:])
        stem = column[: -len(suffix)] if column.endswith(suffix) else column
    words = [_WORDS.get(w, w) for w in stem.split("_") if w]
    text = " ".join(words)
    text = text[:1].upper() + text[1:]
    return f"{text} ({name})" if name else text
