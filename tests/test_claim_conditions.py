"""No claim sentence without its condition where the data split it.

Every claim the chapters make from data (the findings at a glance, the conditions of "The paper and the data")
carries the rows it is computed from (its evidence) and the conditions it states (``stated``). From the evidence
alone, :func:`claim_conditions.material_splits` finds each condition (GPU generation, GPU count, precision, a
claim's own such as the batch band) under which the effect differs materially; the claim must state that
condition, at least at its weakest and strongest levels, in words its sentence contains.
"""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from harness.analysis import claim_conditions as C
from harness.analysis import findings as F
from harness.analysis import reproduction as R
from harness.analysis import takeaways as T


@pytest.fixture(scope="module")
def claims(tables):
    """Every claim the chapters make from data: (kind, finding) -> the claim."""
    llm, diffusion = tables
    found = F.compute_all(llm, diffusion)
    out = {("takeaway", t.finding): t for t in T.takeaways(found, llm)}
    out |= {("caveat", c.finding): c for c in R.caveats(found, llm, diffusion)}
    return out


# The claims made from rows the data split: each must carry its evidence, or the check below would pass vacuously.
WITH_EVIDENCE = {
    ("takeaway", "batch-size-effect"),
    ("takeaway", "fp8-vs-bf16"),
    ("takeaway", "multi-gpu"),
    ("takeaway", "b200-vs-h100"),
    ("takeaway", "multimodal-overhead"),
    ("caveat", "batch-size-effect"),
    ("caveat", "text-to-image-spread"),
    ("caveat", "fp8-vs-bf16"),
    ("caveat", "multimodal-overhead"),
    ("caveat", "multi-gpu"),
}


def test_every_claim_from_data_carries_its_evidence(claims):
    assert set(claims) >= WITH_EVIDENCE
    for key in WITH_EVIDENCE:
        evidence = claims[key].evidence
        assert evidence is not None and len(evidence.frame) and evidence.value in evidence.frame.columns, key


def test_every_claim_states_the_conditions_that_split_its_effect(claims):
    problems = {
        key: missing
        for key, claim in claims.items()
        if (missing := C.missing_conditions(claim.sentence, claim.stated, claim.evidence))
    }
    assert not problems, problems


def test_the_data_do_split_the_claims_the_chapters_qualify(claims):
    """The check is not vacuous: the published data split these effects, so the claims must name the condition."""
    splits = {key: set(C.material_splits(c.evidence)) for key, c in claims.items() if c.evidence is not None}
    assert splits[("caveat", "text-to-image-spread")] == {"num_gpus"}  # 1.04x on 1 x B200, up to 3.97x on 8
    assert {"gpu_model", "num_gpus"} <= splits[("caveat", "batch-size-effect")]
    assert {"gpu_model", "num_gpus"} <= splits[("takeaway", "batch-size-effect")]
    assert "band" in splits[("takeaway", "fp8-vs-bf16")]  # dearer at batch 16, cheaper at 65-256
    image = C.levels(claims[("caveat", "text-to-image-spread")].evidence, "num_gpus").set_index("level")["stat"]
    assert image[1] < 1.05 and image[8] > 3.5


def test_dropping_the_condition_from_the_image_batching_claim_is_caught(claims):
    claim = claims[("caveat", "text-to-image-spread")]
    dropped = dataclasses.replace(claim, condition="batch saves at most 1.04x", stated={})
    assert any("num_gpus" in m for m in C.missing_conditions(dropped.sentence, dropped.stated, dropped.evidence))
    # stating only the weak end is not enough either, nor naming a level in ``stated`` that the sentence lacks
    one_end = dataclasses.replace(claim, stated={"num_gpus": {1: "1 x B200"}})
    assert C.missing_conditions(one_end.sentence, one_end.stated, one_end.evidence)
    unsaid = dataclasses.replace(claim, condition="true on 1 x B200 (batch saves at most 1.04x)")
    assert C.missing_conditions(unsaid.sentence, unsaid.stated, unsaid.evidence)


def test_dropping_the_gpu_count_from_the_batch_effect_takeaway_is_caught(claims):
    claim = claims[("takeaway", "batch-size-effect")]
    stated = {k: v for k, v in claim.stated.items() if k != "num_gpus"}
    missing = C.missing_conditions(claim.sentence, stated, claim.evidence)
    assert missing and all("num_gpus" in m for m in missing)


def _evidence(values: dict, statistic: str = "median") -> C.Evidence:
    rows = [{"num_gpus": level, "ratio": v} for level, vs in values.items() for v in vs]
    return C.Evidence(pd.DataFrame(rows), "ratio", statistic=statistic, conditions=("num_gpus", "gpu_model"))


def test_what_counts_as_a_material_split():
    assert C.is_material([1.0, 1.5]) and not C.is_material([1.0, 1.49])  # the factor, at its edge
    assert C.is_material([1.1, 1 / 1.1]) and not C.is_material([1.09, 0.9])  # a reversal of 10% each way
    assert not C.is_material([2.0]) and not C.is_material([])  # one level splits nothing
    assert set(C.material_splits(_evidence({1: [1.0, 1.0, 1.0], 8: [2.0, 2.0, 2.0]}))) == {"num_gpus"}
    # a level of fewer than MIN_ITEMS items is a single case, not a condition the data cover
    assert not C.material_splits(_evidence({1: [1.0, 1.0, 1.0], 8: [4.0, 4.0]}))
    # the statistic the sentence states decides: "at most" reads the largest
    skewed = {1: [1.0, 1.0, 1.0], 8: [1.0, 1.0, 3.0]}
    assert not C.material_splits(_evidence(skewed)) and C.material_splits(_evidence(skewed, "max"))
    with pytest.raises(ValueError, match="statistic must be one of"):
        _evidence(skewed, "mean")


def test_the_extremes_must_be_stated_in_words_the_sentence_has():
    evidence = _evidence({1: [1.0] * 3, 2: [1.2] * 3, 8: [3.0] * 3})
    stated = {"num_gpus": {1: "1 GPU", 8: "8 GPUs"}}
    assert C.missing_conditions("1.00x on 1 GPU, 3.00x on 8 GPUs", stated, evidence) == []
    assert C.missing_conditions("1.00x on 1 GPU", stated, evidence) == [
        "num_gpus 8: the words '8 GPUs' are not in the sentence"
    ]
    assert C.missing_conditions("anything", {}, evidence) == [
        "num_gpus splits the effect (1: 1.00, 2: 1.20, 8: 3.00) but the claim states no num_gpus"
    ]
    assert C.missing_conditions("anything", {}, None) == []
