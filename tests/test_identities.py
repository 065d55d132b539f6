"""The identities the attribution rests on hold on every published row (and a broken row is caught)."""

from __future__ import annotations

import numpy as np
import pytest

from harness.analysis import tables as an
from harness.errors import ReferenceDataError
from harness.published import reference


@pytest.fixture(scope="module")
def table():
    try:
        return reference.all_table()
    except ReferenceDataError as exc:
        pytest.fail(f"reference data needed (set HARNESS_REFERENCE_DIR): {exc}")


def test_every_published_row_satisfies_the_identities(table):
    errors = an.identity_errors(table)
    # two identities per row, on all 1,858 rows (838 LLM + 1,020 diffusion in the pinned data)
    assert len(errors) == 2 * len(table)
    assert errors["rel_error"].notna().all()
    broken = an.check_identities(table, rtol=1e-9)
    assert broken.empty, broken.head().to_string()


def test_throughput_per_watt_times_energy_per_token_is_one(table):
    llm = an.throughput_per_watt(table[an.is_llm(table)])
    assert np.allclose(llm["tokens_per_sec_per_watt"] * llm["energy_per_token_joules"], 1.0, rtol=1e-9)


def test_identity_check_catches_a_perturbed_published_row(table):
    llm = table[an.is_llm(table)].copy()
    victim = llm.index[17]
    llm.loc[victim, "avg_power_watts"] *= 1.05
    bad = an.check_identities(llm)
    assert len(bad) == 1
    assert bad.iloc[0]["identity"].startswith("energy_per_token = avg_power")
    assert bad.iloc[0]["rel_error"] == pytest.approx(0.05, rel=1e-6)


def test_attribution_is_exact_on_random_published_pairs(table):
    rng = np.random.default_rng(7)
    for kind in (an.is_llm(table), ~an.is_llm(table)):
        part = table[kind]
        for _ in range(200):
            i, j = rng.choice(len(part), size=2, replace=False)
            att = an.attribute(part.iloc[i], part.iloc[j])
            assert att.product == pytest.approx(att.ratio, rel=1e-9)
            residual = next(f for f in att.factors if f.name == "measurement residual")
            assert residual.ratio == pytest.approx(1.0, abs=1e-9)
