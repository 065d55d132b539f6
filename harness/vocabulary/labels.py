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
_WORDS = {"itl": "ITL", "ttft": "TTFT", "gpu": "GPU", "gpus": "GPUs", "p90": "P90", "p95": "P95", "p99": "P99",
          "it": "IT"}
_LABELS = {
    "nickname": "Model",
    "model_id": "Model",
    "gpu": "GPU",
    "gpu_model": "GPU",
    "num_gpus": "GPUs",
    "max_num_seqs": "Batch size (max_num_seqs)",
    "avg_output_len": "Mean output length (tokens)",
    "energy_per_output_joules": "Energy per output (J)",
    "tokens_per_sec_per_watt": "Throughput per watt (tokens/s/W)",
    # the two sides of a comparison (harness.analysis.tables): energy in J whatever the output
    "energy_a": "Energy of A (J)",
    "energy_b": "Energy of B (J)",
    "config_a": "Configuration A",
    "config_b": "Configuration B",
}



def unit(column: str) -> str | None:
    """The unit carried by a column name (``energy_per_token_joules`` -> ``J``), or None."""
    for suffix, name in _UNITS:
        if column.endswith(suffix) or column == suffix[1:]:
            return name
    return None


def label(column: str) -> str:
    """A reader's title for a column: words from its name, the unit in parentheses."""
    if column in _LABELS:
        return _LABELS[column]
    stem, name = column, unit(column)
    if name is not None:
        suffix = next(s for s, u in _UNITS if column.endswith(s) or column == s[1:])
        stem = column[: -len(suffix)] if column.endswith(suffix) else column
    words = [_WORDS.get(w, w) for w in stem.split("_") if w]
    text = " ".join(words)
    text = text[:1].upper() + text[1:]
    return f"{text} ({name})" if name else text
