"""The paper's figures as data, and the one comparison (the paper's own rounding) behind every 'agrees'."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from harness.analysis import findings as F
from harness.analysis import paper as P
from harness.errors import ReferenceDataError
from support import REFERENCE_DIR


def _claims_file() -> Path | None:
    candidates = [
        os.environ.get("HARNESS_PAPER_CLAIMS"),
        Path(__file__).resolve().parents[2] / "shared" / "PAPER-CLAIMS.md",
        REFERENCE_DIR.parents[3] / "PAPER-CLAIMS.md" if len(REFERENCE_DIR.parents) > 3 else None,
    ]
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    return None


def _claims_table(path: Path) -> dict[str, str]:
    rows = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^\|\s*`([a-z0-9-]+)`\s*\|(.*)\|\s*$", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


def test_rounding_rule():
    fig = P.Figure("x", "ratio", "3.56", "x", lambda v: v)
    assert P.check(fig, 3.557).agrees and P.check(fig, 3.5650).agrees
    assert not P.check(fig, 3.566).agrees and not P.check(fig, 3.554).agrees
    assert P.check(fig, 3.557).difference == pytest.approx(-0.003 / 3.56)
    joules = P.Figure("x", "energy", "4,625", "J", lambda v: v)
    assert P.check(joules, 4624.57).agrees and not P.check(joules, 4624.4).agrees
    count = P.Figure("x", "wins", "63", "", lambda v: v)
    assert P.check(count, 63).agrees and not P.check(count, 62).agrees
    band = P.Figure("x", "band", "3 to 5", "x", lambda v: v, P.RANGE)
    assert P.check(band, [2.997, 5.44]).agrees and not P.check(band, [2.4, 5.0]).agrees
    assert not P.check(band, [3.0, 5.6]).agrees
    above = P.Figure("x", "video over image", "100", "x", lambda v: v, P.ABOVE)
    assert P.check(above, 174).agrees and not P.check(above, 99.9).agrees
    signed = P.Figure("x", "change", "-10.6", "%", lambda v: v)
    assert P.check(signed, -10.598).agrees and not P.check(signed, -10.7).agrees
    assert not P.check(fig, None).agrees


def test_figures_are_the_ones_in_paper_claims():
    path = _claims_file()
    if path is None:
        pytest.skip("PAPER-CLAIMS.md not found beside the checkout (set HARNESS_PAPER_CLAIMS)")
    rows = _claims_table(path)
    abstract = path.read_text().split("Headline figures")[-1]
    assert set(rows) == set(F.FINDINGS), "PAPER-CLAIMS.md and the findings name the same findings"
    for fig in P.FIGURES:
        assert fig.finding in rows, fig
        numbers = [fig.text] if fig.kind != P.RANGE else fig.text.split(" to ")
        for n in numbers:
            # as written in the table: "4,625", "3.56x", "+29.9%", "67.8%", "26.4 kJ", "3 to 5x"
            where = rows[fig.finding] + (abstract if fig.kind == P.ABOVE else "")  # "more than 100x": the abstract
            assert re.search(rf"(?<![\d.,]){re.escape(n)}(?!\d|,\d|\.\d)", where), (fig.label, n)
    every = {f.finding for f in P.FIGURES}
    assert every == set(rows), "each finding of PAPER-CLAIMS.md has at least one figure in harness"
    for fig in P.HEADLINES:
        assert fig.text.split(" to ")[0] in abstract


@pytest.fixture(scope="module")
def found():
    try:
        return F.compute_all()
    except ReferenceDataError as exc:
        pytest.skip(f"reference data needed: {exc}")


# How many figures PAPER-CLAIMS.md publishes for each finding (counted by hand from its table).
FIGURE_COUNTS = {
    "reasoning-vs-chat": 6,
    "qwen3-32b-b200": 8,
    "multimodal-overhead": 4,
    "text-to-image-spread": 3,
    "text-to-video-range": 3,
    "batch-size-effect": 3,
    "moe-vs-dense": 1,
    "b200-vs-h100": 8,
    "fp8-vs-bf16": 2,
    "multi-gpu": 5,
}


def test_agrees_comes_from_the_paper_comparison(found):
    assert {f.id for f in found} == set(FIGURE_COUNTS)
    for f in found:
        figures = f.paper["figures"]
        assert len(figures) == FIGURE_COUNTS[f.id], f.id
        assert all(x["agrees"] is True for x in figures), (f.id, [x for x in figures if x["agrees"] is not True])
        assert f.agrees is True and f.comparison.startswith("Agrees with the paper on "), (f.id, f.comparison)
    # the finding's own verdict is overwritten by the comparison: one figure off by a rounding step flips it
    import dataclasses

    moe = next(f for f in found if f.id == "moe-vs-dense")
    off = dataclasses.replace(moe, values=dict(moe.values, dense_over_moe=3.566), agrees=True, comparison="")
    judged = P.judge(off)
    assert judged.agrees is False and judged.paper["figures"][0]["agrees"] is False
    assert judged.comparison.startswith("Differs from the paper on 1 of 1 published figures")
    back = dataclasses.replace(moe, values=dict(moe.values, dense_over_moe=3.5649), agrees=False, comparison="")
    assert P.judge(back).agrees is True


def test_a_changed_value_differs_and_says_by_how_much(found):
    moe = next(f for f in found if f.id == "moe-vs-dense")
    import dataclasses

    changed = dataclasses.replace(moe, values=dict(moe.values, dense_over_moe=3.80), agrees=None, comparison="")
    judged = P.judge(changed)
    assert judged.agrees is False
    assert "3.800x against the paper's 3.56x (+6.7%)" in judged.comparison


def test_headlines_recompute(found):
    """The abstract: task type up to 25x; video sometimes more than 100x an image; utilization 3 to 5x."""
    task, video, batch = P.headline_checks(found)
    assert abs(task.computed - 25) <= 0.5  # 25x as the paper rounds it (25.2x)
    assert video.computed > 100  # more than 100x (173.7x)
    assert len(batch.computed) == 2 and all(2.5 <= r < 5.5 for r in batch.computed)  # 3 to 5x (3.00x, 5.44x)
    assert [c.agrees for c in (task, video, batch)] == [True, True, True]


def test_finding_text_names_no_internals(found):
    internal = re.compile(
        r"STUDY\.md|PAPER-CLAIMS|Computed only|_joules|_watts|\bgpqa\b|lm-arena-chat|sourcegraph-fim"
        r"|image-chat|video-chat|[a-z]+-[a-z]+-\d|GPU\(s\)"
    )
    for f in found:
        for text in (f.summary, f.comparison, f.paper.get("claim", ""), f.paper.get("source", "")):
            assert not internal.search(text), (f.id, internal.search(text).group(0), text)


def test_the_paper_is_defined_once_and_names_the_findings():
    assert tuple(F.FINDINGS) == P.FINDING_IDS, "the command line lists the ids from paper; compute runs FINDINGS"
    assert set(P.CLAIMS) == {fig.finding for fig in P.FIGURES}
    reasoning = P.CLAIMS["reasoning-vs-chat"]
    # the numbers beside the claim are the published figures themselves, as the paper writes them
    assert reasoning["reasoning_mean_energy_per_response_joules"] == 4625
    assert isinstance(reasoning["chat_mean_output_tokens"], int) and reasoning["chat_mean_output_tokens"] == 717
    assert P.CLAIMS["batch-size-effect"]["range_x"] == [3, 5]
    mine = P.claim("batch-size-effect")
    mine["range_x"].append(9)
    assert P.CLAIMS["batch-size-effect"]["range_x"] == [3, 5], "claim() hands out a copy"


def test_order_of_magnitude_check_within_five_percent():
    close, ok = P.order_of_magnitude_check({"tencent/HunyuanVideo": 1.2e6, "some/other-model": 1.0})
    assert ok and set(close) == {"tencent/HunyuanVideo"}
    assert close["tencent/HunyuanVideo"]["published_joules"] == 1.16e6
    assert close["tencent/HunyuanVideo"]["rel_diff"] == pytest.approx(0.04 / 1.16)
    far, ok = P.order_of_magnitude_check({"tencent/HunyuanVideo": 1.3e6, "zai-org/CogVideoX-2b": 28e3})
    assert not ok and far["zai-org/CogVideoX-2b"]["rel_diff"] == 0
    assert P.order_of_magnitude_check({}) == ({}, True)


def test_every_finding_has_a_place_in_the_paper_and_no_guessed_number():
    assert set(P.LOCATIONS) == set(P.FINDING_IDS)
    for finding_id, where in P.LOCATIONS.items():
        text = P.location_text(finding_id)
        assert where.evidence, finding_id
        if where.paper_section is None and where.paper_figure is None:
            assert "not located" in where.evidence and text.endswith("section and figure not located"), finding_id
        else:  # a number must come with what showed it
            assert (where.paper_section or "") in where.evidence or (where.paper_figure or "") in where.evidence
        assert text.startswith("abstract; ") == where.in_abstract, finding_id
    # the abstract's three headline figures are the findings marked as stated in the abstract
    assert {f.finding for f in P.HEADLINES} == {k for k, w in P.LOCATIONS.items() if w.in_abstract}


def test_location_text_names_section_and_figure_when_known(monkeypatch):
    monkeypatch.setitem(P.LOCATIONS, "moe-vs-dense", P.Location("4.2", "7", False, "section 4.2, Figure 7"))
    assert P.location_text("moe-vs-dense") == "section 4.2, Figure 7"
    monkeypatch.setitem(P.LOCATIONS, "moe-vs-dense", P.Location(None, "7", True, "Figure 7"))
    assert P.location_text("moe-vs-dense") == "abstract; section not located, Figure 7"
    assert P.location_text("no-such-finding") == "section and figure not located"
