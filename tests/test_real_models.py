"""Real models: a Hugging Face model id resolves through the local Hugging Face cache to a checkpoint with
real weights, which the transformers backend then serves (a tiny random-weight Llama written by the test
with ``save_pretrained``, with the tokenizer the harness trains with ``tokenizers``); an id that is neither
cached nor downloadable is a one-line error."""

from __future__ import annotations

import os
import shutil

import pytest

from harness.errors import ConfigError
from support import REFERENCE_DIR as REF
from support import RecordingMeter, llm_configuration


def _cfg(**over):
    return llm_configuration(
        **(
            dict(
                study="t",
                task="gpqa",
                family="llm-reasoning",
                backend="transformers",
                precision="float32",
                seed=4,
                max_num_seqs=2,
                num_requests=3,
                max_output_tokens=6,
                options={"output_length_scale": 0.004, "max_prompt_tokens": 24},
            )
            | over
        )
    )


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """A Hugging Face cache holding ``acme/tiny-real`` (one snapshot), as a download would leave it."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from harness.workloads import archs

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "harness-cache"))
    if "HARNESS_REFERENCE_DIR" not in os.environ and REF.is_dir():
        monkeypatch.setenv("HARNESS_REFERENCE_DIR", str(REF))
    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = cache / "models--acme--tiny-real" / "snapshots" / commit
    generated = archs.materialize_llm("tiny-llama")
    torch.manual_seed(123)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(generated))
    model.save_pretrained(snapshot)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (generated / name).exists():
            shutil.copy(generated / name, snapshot / name)
    (cache / "models--acme--tiny-real" / "refs").mkdir()
    (cache / "models--acme--tiny-real" / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    return model, snapshot


def test_a_hugging_face_id_serves_its_real_weights_on_the_transformers_backend(hub_cache, tmp_path):
    import torch

    from harness.workloads import archs
    from harness.workloads.transformers_backend import TransformersBackend

    saved, snapshot = hub_cache
    folder = archs.llm_folder("tiny-llama", "acme/tiny-real")
    assert folder.path.resolve() == snapshot.resolve() and not folder.dummy
    backend = TransformersBackend()
    cfg = _cfg(options={"output_length_scale": 0.004, "max_prompt_tokens": 24, "weights": "acme/tiny-real"})
    backend.start(cfg, tmp_path / "run")
    try:
        for name, tensor in saved.state_dict().items():
            assert torch.equal(backend.model.state_dict()[name], tensor), name
        result = backend.run(cfg, RecordingMeter())
    finally:
        backend.stop()
    assert result.info["weights"] == f"real weights from {folder.path}"
    assert all(r.success for r in result.requests)
    assert [r.output_tokens for r in result.requests] == [r.target_output_tokens for r in result.requests]


def test_an_id_that_is_not_cached_offline_is_a_one_line_error(hub_cache):
    from harness.workloads import archs

    with pytest.raises(ConfigError, match="not in the local Hugging Face cache and HF_HUB_OFFLINE is set") as err:
        archs.llm_folder("tiny-llama", "acme/not-there")
    assert "\n" not in str(err.value)
