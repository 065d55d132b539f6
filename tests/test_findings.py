"""The paper's findings recomputed from the reference data."""

from __future__ import annotations

import json

import pytest

from harness.analysis import findings as F
from harness.errors import HarnessError

# Published in the paper (STUDY.md): B200, minimum-energy configuration per model.
PUBLISHED = {"reasoning_tokens": 6988, "chat_tokens": 717, "reasoning_joules": 4625, "chat_joules": 184}


@pytest.fixture(scope="module")
def found(tables):
    return {f.id: f for f in F.compute_all(*tables)}


def test_reasoning_vs_chat_matches_the_paper_within_2_percent(found):
    v = found["reasoning-vs-chat"].values
    assert v["reasoning_models"] == 12 and v["chat_models"] == 16
    assert v["reasoning_mean_output_tokens"] == pytest.approx(PUBLISHED["reasoning_tokens"], rel=0.02)
    assert v["chat_mean_output_tokens"] == pytest.approx(PUBLISHED["chat_tokens"], rel=0.02)
    assert v["reasoning_mean_energy_per_response_joules"] == pytest.approx(PUBLISHED["reasoning_joules"], rel=0.02)
    assert v["chat_mean_energy_per_response_joules"] == pytest.approx(PUBLISHED["chat_joules"], rel=0.02)
    assert found["reasoning-vs-chat"].agrees is True


def test_reasoning_vs_chat_follows_the_data(tables):
    llm, diffusion = tables
    doubled = llm.copy()
    gpqa = doubled["task"] == "gpqa"
    doubled.loc[gpqa, "energy_per_request_joules"] *= 2
    v = F.compute("reasoning-vs-chat", doubled, diffusion)
    assert v.values["reasoning_mean_energy_per_response_joules"] == pytest.approx(
        2 * PUBLISHED["reasoning_joules"], rel=0.02
    )
    assert v.agrees is False
    with pytest.raises(HarnessError, match="unknown finding"):
        F.compute("no-such-finding", llm, diffusion)


def test_every_finding_computes_and_serialises(found):
    assert list(found) == list(F.FINDINGS)
    for f in found.values():
        payload = json.loads(json.dumps(f.as_dict()))
        assert payload["id"] == f.id and payload["values"] and payload["filters"] and payload["summary"]
        assert f.agrees is True and payload["agrees"] is True, (f.id, f.comparison)  # every finding agrees
        assert "nan" not in f.summary.lower()


def test_values_are_sane(found):
    q = found["qwen3-32b-b200"].values
    assert q["reasoning_max_num_seqs"] < q["chat_max_num_seqs"]
    assert q["reasoning_mean_output_tokens"] > 5 * q["chat_mean_output_tokens"]
    assert q["energy_per_response_ratio"] > 10

    m = found["multimodal-overhead"].values
    assert m["pairs"] >= 5
    assert 1 < m["image_over_text"]["min"] <= m["image_over_text"]["median"] <= m["image_over_text"]["max"] < 20
    assert 1 < m["video_over_text"]["min"] <= m["video_over_text"]["max"] < 50

    img, vid = found["text-to-image-spread"].values, found["text-to-video-range"].values
    assert img["spread"] > 5 and vid["range"] > 5
    assert vid["dearest_video_over_dearest_image"] > 100  # the paper: video sometimes >100x an image
    assert all(c["rel_diff"] < 0.05 for c in {**img["h100_check"], **vid["h100_check"]}.values())

    b = found["batch-size-effect"].values
    assert len(b["highlighted"]) == 2
    assert all(2.5 < h["ratio"] < 6 for h in b["highlighted"].values())  # the paper: 3 to 5x
    assert b["all_series"]["min"] >= 1  # larger batches never cost more per token in the published data

    assert found["moe-vs-dense"].values["dense_over_moe"] > 2

    hw = found["b200-vs-h100"].values
    for family in ("llm", "text-to-image", "text-to-video"):
        v = hw[family]
        assert v["comparisons"] > 0 and 0 <= v["b200_wins"] <= v["comparisons"]
        assert -1 < v["gain"]["min"] <= v["gain"]["median"] <= v["gain"]["max"] < 1

    fp8 = found["fp8-vs-bf16"].values
    assert sum(b["pairs"] for b in fp8["bands"].values()) + fp8["pairs_outside_bands"] == fp8["pairs"]
    assert not any("Coder-480B" in m for m in fp8["models"])

    mg = found["multi-gpu"].values
    assert set(mg["by_gpu"]) == {"H100", "B200"}
    assert all(0 <= v["share_energy_rises"] <= 1 for v in mg["by_gpu"].values())
    oss = mg["gpt_oss_120b_gpqa_h100"]
    assert oss["max_batch_2_gpus"] > oss["max_batch_1_gpu"] and oss["min_energy_ratio"] < 1


def test_only_the_paper_comparison_sets_agrees(tables):
    llm, diffusion = tables
    for finding_id, fn in F.FINDINGS.items():
        raw = fn(llm, diffusion)
        assert raw.id == finding_id and raw.agrees is None, finding_id
        assert "figures" not in raw.paper, finding_id
    judged = F.compute("moe-vs-dense", llm, diffusion)
    assert judged.agrees is True and judged.paper["figures"]


def test_framework_graph_is_data_and_its_chart_is_drawn_by_the_report_layer(found):
    from harness.report import framework

    nodes, edges = F.framework_graph(list(found.values()))
    assert set(edges["source"]) | set(edges["target"]) <= set(nodes["id"])
    shown = edges[edges["finding"] == "moe-vs-dense"]
    assert len(shown) and (shown["evidence"] == found["moe-vs-dense"].summary).all()
    assert not hasattr(F, "framework_chart")  # analysis draws nothing: the chart lives in the report layer
    assert framework.framework_chart(list(found.values())) is not None


def test_findings_cli_json_and_one_id(capsys):
    from harness.cli import main

    assert main(["findings", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert [p["id"] for p in payload] == list(F.FINDINGS)
    assert main(["findings", "--id", "moe-vs-dense", "--json", "--rows"]) == 0
    one = json.loads(capsys.readouterr().out)
    assert one["id"] == "moe-vs-dense" and len(one["rows"]) == 2
    assert main(["findings", "--id", "nope"]) == 2
    assert "unknown finding 'nope'" in capsys.readouterr().err
