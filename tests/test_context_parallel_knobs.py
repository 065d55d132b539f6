"""Diffusion across devices: the ulysses_degree / ring_degree grid knobs (parsing, run ids unchanged where they
are left at null) and preflight's refusals, one line each (no context-parallel plan; ring with native SDPA)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.config import configuration_from_dict
from harness.errors import ConfigError
from harness.orchestration.study import load_study
from harness.workloads.diffusers_backend import DiffusersBackend

ROOT = Path(__file__).resolve().parent.parent


def _study(tmp_path, grid=None, model="tiny-flux", options=None):
    block = {
        "task": "text-to-image",
        "backend": "diffusers",
        "models": [model],
        "num_iterations": 1,
        "grid": {"batch_size": [1], "height": [64], "width": [64], **(grid or {})},
    }
    if options:
        block["options"] = options
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"study": "cp", "runs": [block]}, sort_keys=False))
    return load_study(path)


def test_knobs_left_at_null_keep_the_plain_run_id(tmp_path):
    plain = _study(tmp_path).configurations[0]
    nulls = _study(tmp_path, grid={"ulysses_degree": [None], "ring_degree": [None]}).configurations[0]
    assert nulls.run_id == plain.run_id
    assert "ulysses_degree" not in plain.as_dict() and "ring_degree" not in plain.as_dict()
    assert not plain.context_parallel


def test_degrees_expand_enter_the_id_and_round_trip(tmp_path):
    study = _study(tmp_path, grid={"num_gpus": [2], "ulysses_degree": [2, 1], "ring_degree": [1, 2]})
    got = [(c.ulysses_degree, c.ring_degree) for c in study.configurations]
    assert got == [(2, 1), (1, 2)]  # only the products equal to num_gpus are valid, and both are
    cfg = study.configurations[0]
    assert cfg.context_parallel and cfg.as_dict()["ulysses_degree"] == 2
    assert "ulysses=2" in cfg.label()
    assert configuration_from_dict(cfg.as_dict()) == cfg
    assert configuration_from_dict(cfg.as_dict()).run_id == cfg.run_id
    assert len({c.run_id for c in study.configurations}) == 2


@pytest.mark.parametrize(
    "grid, words",
    [
        ({"num_gpus": [4], "ulysses_degree": [2]}, "equals num_gpus=4"),
        ({"num_gpus": [2], "ulysses_degree": [0]}, "positive integer"),
        ({"num_gpus": [2], "tensor_parallel": [2], "ulysses_degree": [2]}, "tensor_parallel"),
    ],
)
def test_bad_degrees_are_one_line_config_errors(tmp_path, grid, words):
    with pytest.raises(ConfigError, match=words) as info:
        _study(tmp_path, grid=grid)
    assert "\n" not in str(info.value)


def test_llm_blocks_do_not_take_the_knobs(tmp_path):
    block = {
        "task": "lm-arena-chat",
        "backend": "vllm",
        "models": ["llama-3.1-8b"],
        "num_requests": 8,
        "grid": {"max_num_seqs": [8], "ulysses_degree": [1]},
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"study": "cp", "runs": [block]}))
    with pytest.raises(ConfigError, match="does not apply to an LLM task"):
        load_study(path)


def test_smoke_and_default_ids_without_the_knobs_are_unchanged():
    for name in ("smoke", "default"):
        for cfg in load_study(ROOT / "configs" / f"{name}.yaml").configurations:
            if not cfg.context_parallel:
                assert "ulysses_degree" not in cfg.as_dict() and "ring_degree" not in cfg.as_dict()


# --- preflight --------------------------------------------------------------------------------------------------


def test_ulysses_on_a_model_with_a_plan_passes_preflight(tmp_path):
    cfg = _study(tmp_path, grid={"num_gpus": [2], "ulysses_degree": [2]}).configurations[0]
    assert DiffusersBackend.preflight_problems(cfg) == []


def test_a_model_without_a_context_parallel_plan_is_refused(tmp_path):
    cfg = _study(tmp_path, grid={"num_gpus": [2], "ulysses_degree": [2]}, model="tiny-sd3").configurations[0]
    problems = DiffusersBackend.preflight_problems(cfg)
    assert len(problems) == 1 and "\n" not in problems[0]
    assert "SD3Transformer2DModel has no context-parallel plan" in problems[0]


def test_ring_with_native_sdpa_is_refused_and_with_flash_is_not(tmp_path):
    grid = {"num_gpus": [2], "ring_degree": [2]}
    native = _study(tmp_path, grid=grid).configurations[0]
    problems = DiffusersBackend.preflight_problems(native)
    assert len(problems) == 1 and "attention_backend=native" in problems[0] and "log-sum-exp" in problems[0]
    flash = _study(tmp_path, grid=grid, options={"attention_backend": "flash"}).configurations[0]
    assert DiffusersBackend.preflight_problems(flash) == []


def test_several_gpus_without_the_knobs_are_still_one_device_only(tmp_path):
    cfg = _study(tmp_path, grid={"num_gpus": [2]}).configurations[0]
    assert "runs on one device" in DiffusersBackend.preflight_problems(cfg)[0]


def test_preflight_check_reports_the_refusal(tmp_path):
    from harness.orchestration.preflight import Host, check

    cfg = _study(tmp_path, grid={"num_gpus": [2], "ulysses_degree": [2]}, model="tiny-sd3").configurations[0]
    host = Host(gpu_count=0, gpu_names=(), gpu_memory_bytes=())
    assert any("no context-parallel plan" in p for p in check(cfg, host))
