"""Properties of harness.analysis.tables on synthetic tables (no reference data needed).

Attribution factors must multiply back to the energy ratio for any pair of rows;
the frontier must be exactly the set of non-dominated configurations.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.analysis import tables as an
from harness.errors import HarnessError, SelectorError

positive = st.floats(min_value=1e-3, max_value=1e5, allow_nan=False, allow_infinity=False)
FAST = settings(max_examples=150, deadline=None)


def llm_row(length, power, throughput, concurrency, residual=1.0, **extra) -> pd.Series:
    """A consistent LLM row (energy = power / throughput x length), times an optional residual."""
    ept = power / throughput
    row = {
        "task": "gpqa",
        "output_unit": "response",
        "model_id": "org/model",
        "nickname": "Model",
        "gpu_model": "B200",
        "num_gpus": 1,
        "max_num_seqs": 8,
        "batch_size": 8,
        "avg_output_len": length,
        "avg_power_watts": power,
        "output_throughput_tokens_per_sec": throughput,
        "avg_batch_size": concurrency,
        "energy_per_token_joules": ept,
        "energy_per_request_joules": ept * length * residual,
        "median_itl_ms": 1000 * concurrency / throughput,
    }
    row.update(extra)
    return pd.Series(row)


def diffusion_row(steps, height, width, frames, batch, power, latency, residual=1.0) -> pd.Series:
    return pd.Series(
        {
            "task": "text-to-video" if frames > 1 else "text-to-image",
            "output_unit": "video" if frames > 1 else "image",
            "model_id": "org/diffuser",
            "nickname": "Diffuser",
            "gpu_model": "H100",
            "num_gpus": 1,
            "batch_size": batch,
            "inference_steps": steps,
            "height_pixels": height,
            "width_pixels": width,
            "num_frames": frames,
            "avg_power_watts": power,
            "batch_latency_s": latency,
            "energy_per_output_joules": power * latency / batch * residual,
            "throughput_outputs_per_sec": batch / latency,
            "ulysses_degree": 1,
            "ring_degree": 1,
        }
    )


@FAST
@given(
    st.tuples(positive, positive, positive, positive),
    st.tuples(positive, positive, positive, positive),
    st.floats(min_value=0.5, max_value=2.0),
)
def test_llm_factors_multiply_back_to_the_ratio(a, b, residual):
    ra, rb = llm_row(*a), llm_row(*b, residual=residual)
    att = an.attribute(ra, rb)
    assert math.isclose(att.product, att.ratio, rel_tol=1e-9)
    assert math.isclose(att.ratio, rb["energy_per_request_joules"] / ra["energy_per_request_joules"], rel_tol=1e-12)
    f = {x.name: x.ratio for x in att.factors}
    assert math.isclose(f["output length"], b[0] / a[0], rel_tol=1e-12)
    assert math.isclose(f["average power"], b[1] / a[1], rel_tol=1e-12)
    assert math.isclose(f["concurrency reached"], a[3] / b[3], rel_tol=1e-12)
    # the residual is the only factor the identities do not explain
    assert math.isclose(f["measurement residual"], residual, rel_tol=1e-9)
    # per token, the output length drops out
    assert math.isclose(att.per_token_ratio * f["output length"] * residual, att.ratio, rel_tol=1e-9)


@FAST
@given(
    st.tuples(
        st.integers(1, 100),
        st.integers(64, 2048),
        st.integers(64, 2048),
        st.integers(1, 200),
        st.integers(1, 32),
        positive,
        positive,
    ),
    st.tuples(
        st.integers(1, 100),
        st.integers(64, 2048),
        st.integers(64, 2048),
        st.integers(1, 200),
        st.integers(1, 32),
        positive,
        positive,
    ),
    st.floats(min_value=0.5, max_value=2.0),
)
def test_diffusion_factors_multiply_back_to_the_ratio(a, b, residual):
    ra, rb = diffusion_row(*a), diffusion_row(*b, residual=residual)
    att = an.attribute(ra, rb)
    assert math.isclose(att.product, att.ratio, rel_tol=1e-9)
    f = {x.name: x.ratio for x in att.factors}
    assert math.isclose(f["denoising steps"], b[0] / a[0], rel_tol=1e-12)
    assert math.isclose(f["frames"], b[3] / a[3], rel_tol=1e-12)
    assert math.isclose(f["batch size"], a[4] / b[4], rel_tol=1e-12)
    assert math.isclose(f["measurement residual"], residual, rel_tol=1e-9)


def test_attribution_refuses_mixed_kinds_and_missing_energy():
    with pytest.raises(HarnessError, match="LLM row against a diffusion row"):
        an.attribute(llm_row(100, 500, 1000, 8), diffusion_row(20, 1024, 1024, 1, 1, 500, 2))
    broken = llm_row(100, 500, 1000, 8)
    broken["energy_per_request_joules"] = float("nan")  # an own run without an energy counter
    with pytest.raises(HarnessError, match="energy_per_request_joules"):
        an.attribute(broken, llm_row(100, 500, 1000, 8))


def test_explanation_names_the_largest_factor_first_with_numbers():
    a = llm_row(600, 800, 1000, 8)
    b = llm_row(7000, 780, 3000, 110)
    text = an.attribute(a, b).explain()
    assert text.index("concurrency reached") < text.index("output length") < text.index("average power")
    assert "7,000" in text and "Product of factors" in text


points = st.lists(st.tuples(st.floats(1, 1000), st.floats(0.01, 100)), min_size=1, max_size=40)


@FAST
@given(points, st.randoms(use_true_random=False))
def test_frontier_is_exactly_the_non_dominated_set(pts, rnd):
    frame = pd.DataFrame(
        [
            {
                "task": "gpqa",
                "output_unit": "response",
                "model_id": "m",
                "gpu_model": "H100",
                "num_gpus": 1,
                "median_itl_ms": t,
                "energy_per_token_joules": e,
            }
            for t, e in pts
        ]
    )
    marked = an.frontier(frame)
    on = marked[marked["on_frontier"]]
    times, energies = marked["median_itl_ms"].to_numpy(), marked["energy_per_token_joules"].to_numpy()
    for i in range(len(marked)):
        dominated = (
            (times <= times[i]) & (energies <= energies[i]) & ((times < times[i]) | (energies < energies[i]))
        ).any()
        duplicate_before = any(
            times[j] == times[i] and energies[j] == energies[i] and marked["on_frontier"].iloc[j]
            for j in range(len(marked))
            if j != i
        )
        assert marked["on_frontier"].iloc[i] == (not dominated and not duplicate_before)
    # along the frontier, slower means cheaper
    ordered = on.sort_values("median_itl_ms")
    assert ordered["energy_per_token_joules"].is_monotonic_decreasing
    # the frontier does not depend on row order (as a set of points)
    shuffled = frame.sample(frac=1.0, random_state=rnd.randint(0, 10_000))
    again = an.frontier(shuffled)

    def key(f):
        return sorted(map(tuple, f.loc[f["on_frontier"], ["median_itl_ms", "energy_per_token_joules"]].to_numpy()))

    assert key(again) == key(marked)


def _grid(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for model in ("a/one", "b/two"):
        for gpu in ("H100", "B200"):
            for n in (1, 2):
                for batch in (8, 16, 64, 256):
                    power = float(rng.uniform(300, 700)) * n
                    thr = float(rng.uniform(100, 5000))
                    rows.append(
                        dict(
                            llm_row(
                                500,
                                power,
                                thr,
                                batch * 0.95,
                                model_id=model,
                                gpu_model=gpu,
                                num_gpus=n,
                                max_num_seqs=batch,
                                batch_size=batch,
                                nickname=model,
                            )
                        )
                    )
    return pd.DataFrame(rows)


def test_min_energy_configs_one_per_series_and_minimal():
    frame = _grid()
    best = an.min_energy_configs(frame)
    assert len(best) == frame.groupby(list(an.SERIES_KEYS)).ngroups
    for _, row in best.iterrows():
        group = frame[
            (frame["model_id"] == row["model_id"])
            & (frame["gpu_model"] == row["gpu_model"])
            & (frame["num_gpus"] == row["num_gpus"])
        ]
        assert row["energy_per_token_joules"] == group["energy_per_token_joules"].min()


def test_best_under_latency_and_compare_at_latency():
    frame = _grid(1)
    target = float(frame["median_itl_ms"].median())
    best = an.best_under_latency(frame, target)
    assert (best["median_itl_ms"] <= target).all()
    for _, row in best.iterrows():
        ok = frame[
            (frame["model_id"] == row["model_id"])
            & (frame["gpu_model"] == row["gpu_model"])
            & (frame["median_itl_ms"] <= target)
        ]
        assert row["energy_per_token_joules"] == ok["energy_per_token_joules"].min()
    cmp = an.compare_at_latency(frame, "gpu_model", "H100", "B200", [target], by=("model_id", "task"))
    for _, row in cmp.iterrows():
        assert math.isclose(row["gain"], (row["energy_a"] - row["energy_b"]) / row["energy_a"])
        assert row["time_a"] <= target and row["time_b"] <= target


def test_power_budget_respects_the_budget():
    frame = _grid(2)
    budget = 900.0
    best = an.best_under_power_budget(frame, budget)
    assert (best["avg_power_watts"] <= budget).all()
    assert (best["replicas_in_budget"] * best["avg_power_watts"] <= budget + 1e-9).all()
    for _, row in best.iterrows():  # no configuration of the group serves more within the budget
        group = frame[
            (frame["model_id"] == row["model_id"])
            & (frame["gpu_model"] == row["gpu_model"])
            & (frame["avg_power_watts"] <= budget)
        ]
        served = (budget // group["avg_power_watts"]) * group["output_throughput_tokens_per_sec"]
        assert row["throughput_in_budget"] == pytest.approx(served.max())
    assert an.best_under_power_budget(frame, 1.0).empty


def test_throughput_per_watt_is_the_inverse_of_energy():
    out = an.throughput_per_watt(_grid(3))
    assert np.allclose(out["tokens_per_sec_per_watt"] * out["energy_per_token_joules"], 1.0)


def test_static_share_uses_measured_idle_power_when_present():
    frame = _grid(4)
    frame["energy_per_output_joules"] = frame["energy_per_request_joules"]
    est = an.estimate_floor_power(frame)
    assert (est["floor_source"].str.contains("upper bound")).all()
    shares = an.static_power_share(frame)
    assert shares["static_power_share"].between(0, 1).all()
    assert shares["static_power_share"].max() == pytest.approx(1.0)  # the lowest-power run is all floor
    frame["idle_power_watts"] = 100.0  # per GPU, as the runner records it
    measured = an.static_power_share(frame)
    assert np.allclose(measured["static_power_watts"], 100.0 * frame["num_gpus"])
    assert np.allclose(
        measured["static_energy_per_output_joules"] + measured["dynamic_energy_per_output_joules"],
        frame["energy_per_output_joules"],
    )


def test_identity_check_flags_a_broken_row():
    frame = _grid(5)
    assert an.check_identities(frame).empty
    frame.loc[3, "energy_per_token_joules"] *= 1.01
    bad = an.check_identities(frame)
    assert set(bad["identity"]) == {
        "energy_per_token = avg_power / output_throughput",
        "energy_per_request = energy_per_token x avg_output_len",
    }
    assert (bad["batch_size"] == frame.loc[3, "batch_size"]).all()


def test_pick_model():
    frame = _grid(7)
    assert an.pick_model(frame, "TWO") == "b/two"
    assert an.pick_model(frame, "no-such-model") in {"a/one", "b/two"}
    with pytest.raises(SelectorError):
        an.pick_model(frame.iloc[0:0], "a")


def test_selectors():
    frame = _grid(6)
    row = an.select_row(frame, "model=a/one,gpu=B200,num_gpus=2,max_num_seqs=64")
    assert (row["model_id"], row["gpu_model"], row["num_gpus"], row["max_num_seqs"]) == ("a/one", "B200", 2, 64)
    assert an.select_row(frame, "model=one,gpu=b200,gpus=2,batch=64").name == row.name  # short name, aliases
    with pytest.raises(SelectorError, match=r"matches 8 rows; narrow it with gpu_model in \{B200, H100\}"):
        an.select_row(frame, "model=a/one,gpus=1")
    with pytest.raises(SelectorError, match=r"matches no row; without gpu_model=A100 it matches 8 rows"):
        an.select_row(frame, "model=a/one,gpu=A100,num_gpus=1")
    with pytest.raises(SelectorError, match="unknown key colour"):
        an.select_row(frame, "colour=red")
    with pytest.raises(SelectorError, match="is not key=value"):
        an.select_row(frame, "model")
    with pytest.raises(SelectorError, match="num_gpus is numeric"):
        an.select_row(frame, "num_gpus=two")
