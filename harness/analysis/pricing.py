"""Priced energy columns for a table of runs (published or own): kWh, grams of CO2-equivalent and cost.

    from harness.analysis import pricing
    from harness.vocabulary.pricing import DEFAULT_PRICING
    priced = pricing.price_rows(table, DEFAULT_PRICING.with_values(grid_intensity_grams_per_kwh=250))

The three assumptions (grid intensity, electricity price, PUE), their cited defaults and the chain from joules
to kWh, grams and money are in :mod:`harness.vocabulary.pricing`. A row without a measured energy gets no
price (NaN), never 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.vocabulary.pricing import (
    DEFAULT_PRICING,
    JOULES_PER_KWH,
    TOKENS_PER_MILLION,
    PricingAssumptions,
)


def priced_columns(assumptions: PricingAssumptions = DEFAULT_PRICING) -> dict[str, list[str]]:
    """The columns :func:`price_rows` adds: ``{"per_million_tokens": [...], "per_output": [...]}``, in the order
    IT energy (kWh), facility energy (kWh, x PUE), emissions (g CO2e), cost (in the assumptions' currency)."""
    cur = assumptions.cost_column_suffix
    return {
        "per_million_tokens": [
            "it_energy_per_million_tokens_kwh",
            "facility_energy_per_million_tokens_kwh",
            "emissions_per_million_tokens_grams_co2e",
            f"cost_per_million_tokens_{cur}",
        ],
        "per_output": [
            "it_energy_per_output_kwh",
            "facility_energy_per_output_kwh",
            "emissions_per_output_grams_co2e",
            f"cost_per_output_{cur}",
        ],
    }


def _price(joules: pd.Series, assumptions: PricingAssumptions) -> list[pd.Series]:
    kwh_it = pd.to_numeric(joules, errors="coerce").astype(float) / JOULES_PER_KWH
    kwh_facility = kwh_it * assumptions.pue
    return [
        kwh_it,
        kwh_facility,
        kwh_facility * assumptions.grid_intensity_grams_per_kwh,
        kwh_facility * assumptions.price_per_kwh,
    ]


def price_rows(frame: pd.DataFrame, assumptions: PricingAssumptions = DEFAULT_PRICING) -> pd.DataFrame:
    """``frame`` with priced columns added (:func:`priced_columns`): per million output tokens from
    ``energy_per_token_joules`` (language-model rows) and per output (response, image or video, see
    ``output_unit``) from ``energy_per_output_joules``. The assumptions are recorded in the frame's ``attrs``."""
    out = frame.copy()
    names = priced_columns(assumptions)
    per_token = out["energy_per_token_joules"] if "energy_per_token_joules" in out else pd.Series(np.nan, out.index)
    per_output = out["energy_per_output_joules"] if "energy_per_output_joules" in out else pd.Series(np.nan, out.index)
    for name, values in zip(
        names["per_million_tokens"], _price(per_token * TOKENS_PER_MILLION, assumptions), strict=False
    ):
        out[name] = values
    for name, values in zip(names["per_output"], _price(per_output, assumptions), strict=False):
        out[name] = values
    out.attrs["pricing"] = assumptions
    return out
