"""Preflight: configurations the host cannot run are refused before anything starts, one line per problem,
nothing written; --dry-run prints the same verdicts. GPUs come from the NVML fakes (tests/conftest.py)."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pytest
import yaml

from conftest import FakeGPU
from harness.cli import main
from harness.orchestration import preflight
from harness.orchestration.preflight import Host, PreflightError, check
from harness.orchestration.runner import measure_study
from harness.orchestration.study import load_study
from harness.workloads import archs

ROOT = Path(__file__).resolve().parent.parent
GIB = 2**30


def _cfg(path_or_doc, tmp_path=None):
    if isinstance(path_or_doc, dict):
        path = tmp_path / "s.yaml"
        path.write_text(yaml.safe_dump(path_or_doc, sort_keys=False))
        return load_study(path)
    return load_study(path_or_doc)


def _llm(model, tmp_path, grid=None, options=None, backend="vllm"):
    block = {
        "task": "lm-arena-chat",
        "backend": backend,
        "models": [model],
        "num_requests": 8,
        "grid": {"max_num_seqs": [8], **(grid or {})},
    }
    if options:
        block["options"] = options
    return _cfg({"study": "p", "runs": [block]}, tmp_path)


def test_default_config_on_a_host_without_gpu_is_refused_in_one_line_per_series(tmp_path, no_nvml, capsys):
    results = tmp_path / "results"
    code = main(["measure", str(ROOT / "configs" / "default.yaml"), "--results", str(results)])
    err = capsys.readouterr().err
    assert code == 2 and not results.exists()  # nothing written
    head, *lines = err.strip().splitlines()
    study = load_study(ROOT / "configs" / "default.yaml")
    n = len(study.configurations)
    assert head.startswith(f"error: preflight: {n} of {n} configurations") and "nothing was started or written" in head
    assert "no GPU" in head and "CUDA_VISIBLE_DEVICES unset" in head
    series = {(c.task, c.model, c.num_gpus, c.ulysses_degree, c.ring_degree) for c in study.configurations}
    assert len(lines) == len(series)  # one line per problem: the batch sizes of a series share it
    assert all(re.search(r"needs [1248] GPUs?\b", line) and "this host shows none" in line for line in lines)
    llama = next(line for line in lines if "llama-3.1-8b" in line)
    assert "8.03 B parameters" in llama and "max_num_seqs=8,16,32,64,128,256" in llama


def test_dry_run_prints_the_same_verdicts(tmp_path, no_nvml):
    study = load_study(ROOT / "configs" / "default.yaml")
    out = io.StringIO()
    counts = measure_study(study, tmp_path / "results", dry_run=True, progress=False, out=out)
    text = out.getvalue()
    assert counts["refused"] == len(study.configurations) and not (tmp_path / "results").exists()
    with pytest.raises(PreflightError) as err:
        measure_study(study, tmp_path / "results", progress=False, out=io.StringIO())
    for line in str(err.value).splitlines()[1:]:
        assert line in text
    assert text.count("refused: needs 1 GPU") == sum(c.num_gpus == 1 for c in study.configurations)
    assert text.count("refused: needs ") == len(study.configurations)  # the multi-GPU ones: "needs 2 GPUs", ...


@pytest.mark.parametrize("config", ["smoke.yaml", "trivial-cpu.yaml"])
def test_cpu_configs_pass_on_a_host_without_gpu(no_nvml, config):
    study = load_study(ROOT / "configs" / config)
    assert preflight.check_study(study, preflight.host_facts()) == {c.run_id: [] for c in study.configurations}


def test_cuda_visible_devices_empty_refuses_gpu_configs_on_a_gpu_host(fake_nvml, monkeypatch):
    fake_nvml([FakeGPU([(time.time(), 60.0)]) for _ in range(8)])  # the multi-GPU diffusion blocks use up to 8
    study = load_study(ROOT / "configs" / "default.yaml")
    assert not any(preflight.check_study(study, preflight.host_facts()).values())  # 8 x 80 GiB: all fit
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    host = preflight.host_facts()
    assert host.gpu_count == 0 and 'CUDA_VISIBLE_DEVICES=""' in host.describe()
    assert all(v for v in preflight.check_study(study, host).values())


def test_more_gpus_than_visible_after_cuda_visible_devices(fake_nvml, monkeypatch, tmp_path):
    fake_nvml([FakeGPU([(time.time(), 60.0)]), FakeGPU([(time.time(), 60.0)])])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    study = _llm("llama-3.1-8b", tmp_path, grid={"num_gpus": [1, 2]})
    one, two = (check(c, preflight.host_facts()) for c in study.configurations)
    assert one == [] and two == ["needs 2 GPUs, this host shows 1"]


def test_weights_that_cannot_fit(fake_nvml, tmp_path):
    fake_nvml([FakeGPU([(time.time(), 60.0)], memory_total_bytes=16 * GIB)])
    host = preflight.host_facts()
    assert host.gpu_memory_bytes == (16 * GIB,)
    study = _llm("llama-3.1-8b", tmp_path, grid={"precision": ["bfloat16", "fp8"]})
    bf16, fp8 = (check(c, host) for c in study.configurations)
    params = archs.llm_facts("llama-3.1-8b").parameters
    assert bf16 == [
        f"weights do not fit: {params / 1e9:.2f} B parameters x 2 bytes (bfloat16) = "  # noqa: ISC004
        f"{params * 2 / 1e9:.1f} GB per GPU, more than 0.9 of the smallest GPU's "
        f"{16 * GIB / 1e9:.1f} GB ({0.9 * 16 * GIB / 1e9:.1f} GB)"
    ]
    assert fp8 == [
        f"weights do not fit: {params / 1e9:.2f} B parameters x 2 bytes (fp8, loaded as bfloat16 and "  # noqa: ISC004
        f"quantized after loading) = {params * 2 / 1e9:.1f} GB per GPU, more than 0.9 of the smallest "
        f"GPU's {16 * GIB / 1e9:.1f} GB ({0.9 * 16 * GIB / 1e9:.1f} GB)"
    ]  # vLLM's online FP8 peak
    roomy = _llm("llama-3.1-8b", tmp_path, options={"gpu_memory_utilization": 0.99})
    assert check(roomy.configurations[0], host) == []  # 16.06 GB < 0.99 x 17.18 GB
    kv = _llm("llama-3.1-8b", tmp_path, options={"gpu_memory_utilization": 0.99, "kv_cache_gib": 2})
    assert "+ 2 GiB KV cache" in check(kv.configurations[0], host)[0]


def test_tensor_and_expert_parallel_split_the_weights(tmp_path):
    host = Host(gpu_count=2, gpu_memory_bytes=(40 * GIB, 40 * GIB), visible="CUDA_VISIBLE_DEVICES unset")
    moe = archs.llm_facts("qwen3-30b-a3b")
    single, tp2 = (
        _llm("qwen3-30b-a3b", tmp_path, grid={"num_gpus": [1, 2], "tensor_parallel": [1]}).configurations[:1]
        + _llm("qwen3-30b-a3b", tmp_path, grid={"num_gpus": [2], "tensor_parallel": [2]}).configurations[:1]
    )
    assert "weights do not fit" in check(single, host)[0]  # 61 GB on one 43 GB GPU
    assert check(tp2, host) == []
    ep = _llm("qwen3-30b-a3b", tmp_path, grid={"num_gpus": [2], "expert_parallel": [2]}).configurations[0]
    assert check(ep, host) == []  # experts over both GPUs, attention replicated (tensor_parallel=1)
    assert 0 < moe.expert_parameters < moe.parameters


def test_parallelism_that_does_not_divide_heads_or_experts(tmp_path):
    host = Host(gpu_count=8, gpu_memory_bytes=(80 * GIB,) * 8)
    cfg = _llm("llama-3.1-8b", tmp_path, grid={"num_gpus": [6], "tensor_parallel": [6]}).configurations[0]
    problems = check(cfg, host)
    assert any("does not divide the model's 32 attention heads" in p for p in problems)
    dense_ep = _llm("llama-3.1-8b", tmp_path, grid={"num_gpus": [2], "expert_parallel": [2]}).configurations[0]
    assert check(dense_ep, host) == ["expert_parallel=2 on a dense model (no experts)"]
    wrong_ep = _llm(
        "qwen3-30b-a3b", tmp_path, grid={"num_gpus": [4], "tensor_parallel": [2], "expert_parallel": [2]}
    ).configurations[0]
    assert any("expert_parallel must be 1 or 4" in p for p in check(wrong_ep, host))
    one_device = _llm("tiny-llama", tmp_path, grid={"num_gpus": [2]}, backend="transformers").configurations[0]
    assert any("runs on one device" in p for p in check(one_device, host))


def test_a_refused_sweep_writes_nothing_even_when_one_configuration_is_bad(fake_nvml, tmp_path):
    fake_nvml([FakeGPU([(time.time(), 60.0)])])
    study = _llm("tiny-llama", tmp_path, grid={"num_gpus": [1, 2]})
    with pytest.raises(PreflightError) as err:
        measure_study(study, tmp_path / "results", progress=False, out=io.StringIO())
    assert "1 of 2 configurations" in str(err.value) and "needs 2 GPUs, this host shows 1" in str(err.value)
    assert not (tmp_path / "results").exists()
    # --index scopes the preflight too: the configuration that fits is measured alone (a Slurm array task)
    assert check(study.configurations[0], preflight.host_facts()) == []


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-qwen3", "tiny-qwen3-moe", "llama-3.1-8b"])
def test_parameter_counts_match_transformers(name):
    """The preflight's count from config.json equals the model transformers builds (on the meta device)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = transformers.AutoConfig.for_model(**archs.get(name).hf_config())
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config)
    assert archs.llm_facts(name).parameters == sum(p.numel() for p in model.parameters())
