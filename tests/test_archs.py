"""Architecture files and the generated model folders (config + trained tokenizer)."""

from __future__ import annotations

import json

import pytest

from harness.errors import ConfigError
from harness.workloads import archs, registry


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(archs.CACHE_ENV, str(tmp_path))
    return tmp_path


def test_required_architectures_exist_per_backend():
    llm = set(registry.known_models("vllm"))
    assert {"llama-3.1-8b", "qwen3-8b", "qwen3-30b-a3b", "tiny-llama", "tiny-qwen3-moe"} <= llm
    assert set(registry.known_models("transformers")) == llm
    diff = set(registry.known_models("diffusers"))
    assert {"sd3.5-medium", "flux.1-dev", "wan2.1-t2v-1.3b", "tiny-sd3", "tiny-wan"} <= diff
    assert not llm & diff
    assert {archs.get(n).task for n in diff} == {"text-to-image", "text-to-video"}


def test_unknown_architecture_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown architecture 'gpt-9'"):
        archs.get("gpt-9")


def test_real_size_configs_have_the_published_shape():
    from transformers import AutoConfig

    moe = archs.get("qwen3-30b-a3b").hf_config()
    assert moe["num_experts"] == 128 and moe["num_experts_per_tok"] == 8
    llama = archs.get("llama-3.1-8b")
    assert llama.reference_model("lm-arena-chat") == "meta-llama/Llama-3.1-8B-Instruct"
    cfg = AutoConfig.for_model(**{k: v for k, v in llama.hf_config().items() if k != "architectures"})
    params = 2 * cfg.vocab_size * cfg.hidden_size + cfg.num_hidden_layers * (
        cfg.hidden_size * cfg.head_dim * (cfg.num_attention_heads * 2 + cfg.num_key_value_heads * 2)
        + 3 * cfg.hidden_size * cfg.intermediate_size
    )
    assert 7.9e9 < params < 8.1e9  # Llama 3.1 8B has 8.03 B parameters


def test_tiny_llama_streams_cleanly_on_cpu_shape():
    cfg = archs.get("tiny-llama").hf_config()
    assert (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["head_dim"]) == (512, 8, 64)
    for name in archs.names("vllm"):
        head_dim = archs.text_config(archs.get(name).hf_config())["head_dim"]
        assert head_dim in (32, 64, 80, 96, 112, 128, 256)  # what vLLM's CPU attention supports


def test_materialized_folder_is_reproducible(tmp_path, monkeypatch):
    digests = []
    for sub in ("a", "b"):
        monkeypatch.setenv(archs.CACHE_ENV, str(tmp_path / sub))
        folder = archs.materialize_llm("tiny-llama")
        digests.append((folder.name, (folder / "tokenizer.json").read_bytes()))
        assert folder.parent.parent == tmp_path / sub
    assert digests[0] == digests[1]
    assert archs.materialize_llm("tiny-llama") == folder  # cached: the same folder again


def test_tokenizer_covers_exactly_the_model_vocabulary(cache):
    from transformers import AutoTokenizer

    folder = archs.materialize_llm("llama-3.1-8b")
    info = archs.folder_info(folder)
    cfg = json.loads((folder / "config.json").read_text())
    tok = AutoTokenizer.from_pretrained(folder)
    assert len(tok) == cfg["vocab_size"] == info["vocab_size"] == 128256
    assert (tok.bos_token_id, tok.eos_token_id) == (cfg["bos_token_id"], cfg["eos_token_id"])
    lo, hi = info["regular_token_ids"]
    assert (lo, hi) == (0, 8191)
    # text round-trips through trained tokens; any id a random model emits decodes
    ids = tok("kabo tesu minara.", add_special_tokens=False)["input_ids"]
    assert all(lo <= i <= hi for i in ids) and tok.decode(ids) == "kabo tesu minara."
    assert tok.decode([127999, 100000]) == "<|reserved_127999|><|reserved_100000|>"
    assert tok.decode([128000, 5], skip_special_tokens=True) == tok.decode([5])


def test_special_ids_that_split_the_trained_range_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="split the trained tokens"):
        archs.build_tokenizer(1000, {"bos_token": (500, "<s>"), "eos_token": (1, "</s>")}, tmp_path, 64)


def test_registry_filters_models_by_task_and_lists_backend_options():
    assert "tiny-wan" in registry.known_models("diffusers", "text-to-video")
    assert "tiny-wan" not in registry.known_models("diffusers", "text-to-image")
    assert "tiny-sd3" in registry.known_models("diffusers", "text-to-image")
    assert registry.known_models("vllm", "gpqa") == registry.known_models("vllm")
    assert {"kv_cache_gib", "enforce_eager", "output_length_scale"} <= set(registry.backend_options("vllm"))
    assert registry.unknown_options("diffusers", {"guidance_scale": 2, "steps": 3}) == ["steps"]
    assert registry.unknown_options("transformers", {}) == []
    with pytest.raises(ConfigError, match="unknown backend"):
        registry.backend_options("tgi")


def test_prompt_ids_avoid_special_tokens_wherever_they_sit():
    assert archs._largest_gap([128000, 128001], 128256) == (0, 127999)
    assert archs._largest_gap([0, 1, 2], 32000) == (3, 31999)
    assert archs._largest_gap([], 100) == (0, 99)
