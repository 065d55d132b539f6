"""Backend options: every option of every backend has a type and range, refused with the config (one line)."""

from __future__ import annotations

import importlib
import itertools
from pathlib import Path

import pytest
import yaml

from harness.errors import ConfigError
from harness.orchestration.study import load_study
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


@pytest.mark.parametrize(
    "name, value, expect",
    [
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
    ],
)
def test_bad_vllm_option_in_smoke_config_is_refused_in_one_line(tmp_path, name, value, expect):
    path = _smoke_with(tmp_path, **{name: value})
    with pytest.raises(ConfigError) as err:
        load_study(path)
    message = str(err.value)
    assert message.startswith(f"{path}: runs[0].options.{name}: ") and expect in message
    assert "\n" not in message


def test_smoke_options_pass():
    assert (
        len(load_study(ROOT / "configs" / "smoke.yaml").configurations) == 13
    )  # seven tasks, one of them split over two processes


@pytest.mark.parametrize(
    "backend, task, model, options, expect",
    [
        ("diffusers", "text-to-image", "tiny-sd3", {"device": "gpu"}, "must be one of auto, cpu, cuda"),
        ("diffusers", "text-to-image", "tiny-sd3", {"warmup_steps": -1}, "must be an integer >= 0"),
        ("transformers", "lm-arena-chat", "tiny-llama", {"greedy": "no"}, "must be true or false"),
        ("trivial", "cpu-trivial", "cpu-spin", {"step_s": "fast"}, "must be a number >= 0"),
    ],
)
def test_other_backends_check_types_too(tmp_path, backend, task, model, options, expect):
    path = tmp_path / "s.yaml"
    path.write_text(
        yaml.safe_dump(
            {"study": "s", "runs": [{"task": task, "backend": backend, "models": [model], "options": options}]}
        )
    )
    with pytest.raises(ConfigError, match=expect):
        load_study(path)


def test_vllm_backend_refuses_a_bad_option_itself(tmp_path):
    """A configuration rebuilt from a stored run (no load_study) is checked again at start."""
    from harness.config import configuration_from_dict
    from harness.workloads.base import BadOption
    from harness.workloads.vllm_backend import VLLMBackend

    cfg = load_study(ROOT / "configs" / "smoke.yaml").configurations[0]
    data = cfg.as_dict() | {"options": {"max_prompt_tokens": "many"}}
    with pytest.raises(BadOption, match=r"options.max_prompt_tokens: must be an integer"):
        VLLMBackend()._options(configuration_from_dict(data))


def test_spec_bounds():
    assert problem(Opt("number", above=0, maximum=1), 1) is None
    assert problem(Opt("number", above=0, maximum=1), 0) is not None
    assert problem(Opt("number", minimum=0), float("nan")) is not None
    assert problem(Opt("int", minimum=1), None) is None  # None: the backend's default


def test_a_default_outside_its_own_range_is_refused_when_the_table_is_built():
    with pytest.raises(ValueError, match="default does not fit"):
        Opt("int", minimum=1, default=0)
    with pytest.raises(ValueError, match="default does not fit"):
        Opt("choice", choices=("a", "b"), default="c")
    assert Opt("int", minimum=1, default=3).default == 3


@pytest.mark.parametrize("backend", sorted(registry.BACKENDS))
def test_every_backend_checks_its_options_at_start_from_its_one_table(backend):
    """Unknown names and values outside their type and range: a one-line BadOption (a ConfigError and a
    WorkloadError with cause bad-option), the same check as the study reader's."""
    from types import SimpleNamespace

    from harness.workloads.base import BadOption
    from harness.workloads.options import defaults

    cls = registry.backend_class(backend)
    assert registry.backend_options(backend) == defaults(cls.option_table) == _module(backend).OPTIONS
    with pytest.raises(BadOption, match=rf"^unknown {backend} option\(s\) \['no_such_option'\]") as err:
        cls().resolve_options(SimpleNamespace(options={"no_such_option": 1}))
    assert err.value.cause == "bad-option" and isinstance(err.value, ConfigError)
    name = next(n for n, opt in cls.option_table.items() if opt.kind in ("int", "number", "bool"))
    with pytest.raises(BadOption, match=rf"^options\.{name}: must be "):
        cls().resolve_options(SimpleNamespace(options={name: "not-a-value"}))


def test_the_catalogue_comes_from_the_backend_classes():
    catalogue = registry.catalogue()
    assert catalogue.backend_tasks == {
        "trivial": ("cpu-trivial",),
        "vllm": ("lm-arena-chat", "gpqa", "sourcegraph-fim", "image-chat", "video-chat"),
        "transformers": ("lm-arena-chat", "gpqa", "sourcegraph-fim"),
        "diffusers": ("text-to-image", "text-to-video"),
        "openai": ("lm-arena-chat", "gpqa", "sourcegraph-fim"),
    }
    assert catalogue.any_model_backends == ("openai",)
    assert registry.known_models("trivial", "cpu-trivial") == ("cpu-spin",)


def test_backends_say_which_layouts_they_cannot_run():
    from harness.config import configuration_from_dict

    cfg = load_study(ROOT / "configs" / "smoke.yaml").configurations[0]
    wide = configuration_from_dict(cfg.as_dict() | {"num_gpus": 2, "tensor_parallel": 3})
    assert registry.backend_class("vllm").preflight_problems(wide) == ["tensor_parallel=3 does not divide num_gpus=2"]
    assert registry.backend_class("transformers").preflight_problems(wide) == [
        "the transformers backend runs on one device (num_gpus, tensor_parallel and expert_parallel must be 1)"
    ]
    assert registry.backend_class("trivial").preflight_problems(wide) == []
    assert registry.backend_class("transformers").preflight_problems(cfg) == []


def test_the_stamp_clock_never_repeats_or_goes_back(monkeypatch):
    from harness.workloads import base

    now = itertools.chain([10.0, 10.0, 9.5, 12.0], itertools.repeat(20.0))  # the wall clock steps back once
    monkeypatch.setattr(base.time, "time", lambda: next(now))
    clock = base.StampClock()
    stamps = [clock() for _ in range(4)]
    assert stamps == [10.0, pytest.approx(10.000001), pytest.approx(10.000002), 12.0]
    assert all(b > a for a, b in itertools.pairwise(stamps))
