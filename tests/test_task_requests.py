"""The request shape of each of the reference's LLM tasks, against the fake vLLM server (tests/fake_vllm.py):
code completion as fill-in-the-middle prompts on the completions endpoint."""

from __future__ import annotations

import json

import pytest

from harness.errors import ConfigError
from harness.workloads import fim


def test_a_fim_prompt_frames_prefix_and_suffix_with_the_models_tokens_and_keeps_its_length():
    ids = (2, 4, 3)  # prefix, suffix, middle
    prompts = [list(range(100, 100 + n)) for n in (5, 40, 300)]
    out = fim.fim_prompt_ids(prompts, ids, seed=0)
    for drawn, prompt in zip(prompts, out, strict=True):
        assert len(prompt) == len(drawn)
        assert prompt[0] == 2 and prompt[-1] == 3 and prompt.count(4) == 1
        cut = prompt.index(4)
        code = len(prompt) - 3
        assert 1 <= cut - 1 <= code - 1  # neither side empty
        if code >= 20:
            assert fim.PREFIX_SHARE[0] - 0.05 <= (cut - 1) / code <= fim.PREFIX_SHARE[1] + 0.05
    assert fim.fim_prompt_ids(prompts, ids, seed=0) == out  # seeded
    assert len(fim.fim_prompt_ids([[9]], ids, seed=0)[0]) == fim.MIN_PROMPT_TOKENS


def test_an_architecture_without_fim_tokens_is_refused_in_one_line(tmp_path):
    from harness.workloads import archs

    with pytest.raises(ConfigError) as err:
        fim.fim_token_ids(archs.materialize_llm("tiny-llama"))
    assert "<|fim_prefix|>" in str(err.value) and "\n" not in str(err.value)
    folder = archs.materialize_llm("tiny-qwen3-moe")
    assert fim.fim_token_ids(folder) == (2, 4, 3)


def _measure(tmp_path, block: str):
    from harness.measuring import store
    from harness.orchestration import runner
    from harness.orchestration.study import load_study

    config = tmp_path / "s.yaml"
    config.write_text("study: shapes\nsettings: {cooldown_s: 0, idle_power_s: 0, sampler_hz: 10}\nruns:\n" + block)
    study = load_study(config)
    counts = runner.measure_study(study, tmp_path / "results", progress=False)
    run_dir = store.run_path(tmp_path / "results", "shapes", study.configurations[0].run_id)
    return counts, json.loads((run_dir / "run.json").read_text())


def _bodies(pids):
    return [json.loads(line) for line in (pids / "bodies.jsonl").read_text().splitlines()]


def test_code_completion_sends_fim_prompts_to_the_completions_endpoint(tmp_path, no_nvml, vllm_env, monkeypatch):
    import fake_vllm

    pids = fake_vllm.use(monkeypatch, tmp_path, {"token_s": 0.002, "record_bodies": True})
    counts, record = _measure(tmp_path, (
        "  - {task: sourcegraph-fim, backend: vllm, models: [tiny-qwen3-moe], num_requests: 6, seed: 2,\n"
        "     options: {output_length_scale: 0.05, max_prompt_tokens: 64}, grid: {max_num_seqs: [2]}}\n"))
    assert counts == {"ok": 1}, record.get("message")
    bodies = [b for b in _bodies(pids) if b["path"] == "/v1/completions"]
    assert len(bodies) == 6
    prompts = record["backend_info"]["prompts"]
    assert prompts["fim_token_ids"] == [2, 4, 3]
    for b in bodies:
        p = b["body"]["prompt"]
        assert p[0] == 2 and p[-1] == 3 and p.count(4) == 1 and 0 not in p  # no BOS before the prefix token
        assert b["body"]["ignore_eos"] and b["body"]["max_tokens"] == b["body"]["min_tokens"]
    drawn = record["backend_info"]["lengths"]["prompt_tokens"]
    assert sorted(len(b["body"]["prompt"]) for b in bodies) == sorted(drawn)
    assert "Qwen3-Coder" in json.dumps(record["backend_info"]["lengths"])  # the published sourcegraph-fim lengths
