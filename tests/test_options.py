"""Backend options: every option of every backend has a type and range, refused with the config (one line)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from harness.orchestration.study import load_study
from harness.errors import ConfigError
from harness.workloads import registry
from harness.workloads.options import Opt, problem

ROOT = Path(__file__).resolve().parent.parent


def _module(backend):
    return importlib.import_module(registry.BACKENDS[backend].partition(":")[0])


@pytest.mark.parametrize("backend", sorted(registry.BACKENDS))
def test_every_option_has_a_spec_that_accepts_its_default(backend):
    module = _module(backend)
    assert set(module.OPTION_SPECS) == set(module.OPTIONS), "an option without a type and range"
    for name, default in module.OPTIONS.items():
        assert problem(module.OPTION_SPECS[name], default) is None, name


def _smoke_with(tmp_path, **options) -> Path:
    doc = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    doc["runs"][0]["options"] = {**doc["runs"][0]["options"], **options}
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.mark.parametrize("name, value, expect", [
    ("output_length_scale", "not-a-number", "must be a number > 0, got 'not-a-number'"),
    ("max_prompt_tokens", "not-a-number", "must be an integer >= 1, got 'not-a-number'"),
    ("max_prompt_tokens", 12.5, "must be an integer >= 1"),
    ("output_length_scale", 0, "must be a number > 0, got 0"),
    ("kv_cache_gib", -1, "must be a number > 0"),
    ("gpu_memory_utilization", 1.5, "<= 1"),
    ("port", 70000, "<= 65535"),
    ("enforce_eager", "yes", "must be true or false"),
    ("trust_remote_code", 1, "must be true or false"),
    ("startup_timeout_s", True, "must be a number > 0, got True"),
    ("extra_args", "--foo", "must be a list of strings"),
    ("weights", "", "must be a non-empty string"),
])
def test_bad_vllm_option_in_smoke_config_is_refused_in_one_line(tmp_path, name, value, expect):
    path = _smoke_with(tmp_path, **{name: value})
    with pytest.raises(ConfigError) as err:
        load_study(path)
    message = str(err.value)
    assert message.startswith(f"{path}: runs[0].options.{name}: ") and expect in message
    assert "\n" not in message


def test_smoke_options_pass():
    assert len(load_study(ROOT / "configs" / "smoke.yaml").configurations) == 11


@pytest.mark.parametrize("backend, task, model, options, expect", [
    ("diffusers", "text-to-image", "tiny-sd3", {"device": "gpu"}, "must be one of auto, cpu, cuda"),
    ("diffusers", "text-to-image", "tiny-sd3", {"warmup_steps": -1}, "must be an integer >= 0"),
    ("transformers", "lm-arena-chat", "tiny-llama", {"greedy": "no"}, "must be true or false"),
    ("trivial", "cpu-trivial", "cpu-spin", {"step_s": "fast"}, "must be a number >= 0"),
])
def test_other_backends_check_types_too(tmp_path, backend, task, model, options, expect):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"study": "s", "runs": [
        {"task": task, "backend": backend, "models": [model], "options": options}]}))
    with pytest.raises(ConfigError, match=expect):
        load_study(path)


def test_vllm_backend_refuses_a_bad_option_itself(tmp_path):
    """A configuration rebuilt from a stored run (no load_study) is checked again at start."""
    from harness.config import configuration_from_dict
    from harness.workloads.vllm_backend import BadOption, VLLMBackend

    cfg = load_study(ROOT / "configs" / "smoke.yaml").configurations[0]
    data = cfg.as_dict() | {"options": {"max_prompt_tokens": "many"}}
    with pytest.raises(BadOption, match="options.max_prompt_tokens: must be an integer"):
        VLLMBackend()._options(configuration_from_dict(data))


def test_spec_bounds():
    assert problem(Opt("number", above=0, maximum=1), 1) is None
    assert problem(Opt("number", above=0, maximum=1), 0) is not None
    assert problem(Opt("number", minimum=0), float("nan")) is not None
    assert problem(Opt("int", minimum=1), None) is None  # None: the backend's default
