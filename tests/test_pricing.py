"""Joules a reader can price (harness.vocabulary.pricing, harness.analysis.pricing)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from harness.analysis import pricing
from harness.errors import HarnessError
from harness.vocabulary.labels import label
from harness.vocabulary.pricing import DEFAULT_PRICING, PricingAssumptions, price_energy


def test_the_defaults_are_the_cited_figures():
    assert DEFAULT_PRICING.grid_intensity_grams_per_kwh == 436.0  # Ember, world average 2022
    assert DEFAULT_PRICING.price_per_kwh == 0.0806 and DEFAULT_PRICING.currency == "USD"  # EIA 2023, industrial
    assert DEFAULT_PRICING.pue == 1.58  # Uptime Institute 2023 average
    assert "Ember" in DEFAULT_PRICING.describe() and "(given)" not in DEFAULT_PRICING.describe()


def test_a_million_tokens_at_a_third_of_a_joule_each():
    # 0.36 J/token x 1e6 tokens = 360 kJ = 0.1 kWh at the GPUs; x PUE 1.5 = 0.15 kWh at the meter
    assumptions = PricingAssumptions(grid_intensity_grams_per_kwh=400.0, price_per_kwh=0.2, currency="eur", pue=1.5)
    priced = price_energy(0.36 * 1e6, assumptions)
    assert priced.kwh_it == pytest.approx(0.1)
    assert priced.kwh_facility == pytest.approx(0.15)
    assert priced.grams_co2e == pytest.approx(60.0)
    assert priced.cost == pytest.approx(0.03)
    assert price_energy(None) is None and price_energy(float("nan")) is None


def test_given_values_replace_the_defaults_and_say_so():
    given = DEFAULT_PRICING.with_values(grid_intensity_grams_per_kwh=50, currency="eur")
    assert given.grid_intensity_grams_per_kwh == 50 and given.currency == "EUR" and given.pue == DEFAULT_PRICING.pue
    assert "50 gCO2e/kWh (given)" in given.describe() and "(default: Uptime 2023 average)" in given.describe()


@pytest.mark.parametrize(
    "kwargs", [{"pue": 0.9}, {"price_per_kwh": -1}, {"grid_intensity_grams_per_kwh": math.inf}, {"currency": "US$"}]
)
def test_impossible_assumptions_are_refused_in_one_line(kwargs):
    with pytest.raises(HarnessError, match="pricing: ") as info:
        PricingAssumptions(**kwargs)
    assert "\n" not in str(info.value)


def test_price_rows_per_million_tokens_and_per_output():
    frame = pd.DataFrame(
        {
            "energy_per_token_joules": [0.36, None, None],
            "energy_per_output_joules": [90.0, 1800.0, None],
            "output_unit": ["response", "image", "video"],
        }
    )
    assumptions = PricingAssumptions(grid_intensity_grams_per_kwh=400.0, price_per_kwh=0.2, pue=1.5)
    priced = pricing.price_rows(frame, assumptions)
    cols = pricing.priced_columns(assumptions)
    assert cols["per_million_tokens"][-1] == "cost_per_million_tokens_usd"
    row = priced.iloc[0]
    assert row["it_energy_per_million_tokens_kwh"] == pytest.approx(0.1)
    assert row["emissions_per_million_tokens_grams_co2e"] == pytest.approx(60.0)
    assert row["cost_per_million_tokens_usd"] == pytest.approx(0.03)
    image = priced.iloc[1]
    assert image["facility_energy_per_output_kwh"] == pytest.approx(1800 / 3.6e6 * 1.5)
    assert math.isnan(image["cost_per_million_tokens_usd"])  # no token energy: no price, never 0
    assert priced.iloc[2][cols["per_output"]].isna().all()
    assert priced.attrs["pricing"] == assumptions


def test_priced_columns_read_as_labels_with_units():
    assert label("emissions_per_million_tokens_grams_co2e") == "Emissions per million tokens (g CO2e)"
    assert label("facility_energy_per_million_tokens_kwh") == "Facility energy per million tokens (kWh)"
    assert label("cost_per_output_usd") == "Cost per output (USD)"
