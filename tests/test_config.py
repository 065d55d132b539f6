"""Study configs: expansion, run ids, and one-line errors naming the file, the field and what is allowed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from harness.errors import ConfigError
from harness.orchestration.study import load_study
from harness.workloads import registry

ROOT = Path(__file__).resolve().parent.parent
MODELS = {
    "trivial": ("cpu-spin",),
    "vllm": ("tiny-llama", "tiny-qwen3"),
    "transformers": ("tiny-llama",),
    "diffusers": ("tiny-sd3", "tiny-wan"),
}


@pytest.fixture(autouse=True)
def _models(monkeypatch):
    monkeypatch.setattr(registry, "known_models", lambda backend: MODELS.get(backend, ()))


LLM = {
    "task": "lm-arena-chat",
    "backend": "vllm",
    "models": ["tiny-llama"],
    "num_requests": 8,
    "grid": {"max_num_seqs": [4, 8], "num_gpus": [1, 2], "tensor_parallel": [1]},
}
IMAGE = {
    "task": "text-to-image",
    "backend": "diffusers",
    "models": ["tiny-sd3"],
    "grid": {"batch_size": [1, 2], "inference_steps": [4], "height": [64], "width": [64]},
}


def _write(tmp_path, doc, name="study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False))
    return path


def test_trivial_config_expands_in_order_with_stable_ids():
    study = load_study(ROOT / "configs" / "trivial-cpu.yaml")
    assert study.name == "trivial-cpu" and study.settings.sampler_hz == 10
    assert [c.max_num_seqs for c in study.configurations] == [1, 4, 8]
    cfg = study.configurations[0]
    assert (cfg.task, cfg.family, cfg.backend, cfg.model, cfg.is_llm, cfg.is_diffusion) == (
        "cpu-trivial",
        "cpu-trivial",
        "trivial",
        "cpu-spin",
        True,
        False,
    )
    assert cfg.batch_size is None and cfg.num_iterations is None and cfg.num_requests == 32
    ids = [c.run_id for c in study.configurations]
    assert len(set(ids)) == 3 and all(len(i) == 12 and int(i, 16) >= 0 for i in ids)
    assert [c.run_id for c in load_study(ROOT / "configs" / "trivial-cpu.yaml").configurations] == ids
    json.dumps(cfg.as_dict())
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.model = "x"
    with pytest.raises(TypeError):
        cfg.options["step_s"] = 1


def test_grid_order_defaults_and_study_independent_ids(tmp_path):
    llm = load_study(_write(tmp_path, {"study": "a", "runs": [LLM, IMAGE]}))
    knobs = [(c.task, c.num_gpus, c.max_num_seqs, c.batch_size) for c in llm.configurations]
    assert knobs == [
        ("lm-arena-chat", 1, 4, None),
        ("lm-arena-chat", 1, 8, None),
        ("lm-arena-chat", 2, 4, None),
        ("lm-arena-chat", 2, 8, None),
        ("text-to-image", 1, None, 1),
        ("text-to-image", 1, None, 2),
    ]
    first = llm.configurations[0]
    assert first.max_num_batched_tokens == 8192 and first.precision == "bfloat16" and first.height is None
    image = llm.configurations[-1]
    assert image.is_diffusion and image.num_iterations == 4 and image.num_frames == 1 and image.num_requests is None
    other = load_study(_write(tmp_path, {"study": "b", "runs": [LLM]}, "b.yaml"))
    assert other.configurations[0].run_id == first.run_id  # the study name is not part of the id
    assert other.configurations[0].as_dict()["study"] == "b"
    changed = load_study(_write(tmp_path, {"study": "c", "runs": [LLM | {"seed": 1}]}, "c.yaml"))
    assert changed.configurations[0].run_id != first.run_id


def _llm(**changes):
    block = json.loads(json.dumps(LLM))
    grid = changes.pop("grid", None)
    if grid:
        block["grid"].update(grid)
    block.update(changes)
    return {"study": "s", "runs": [block]}


BAD = [
    ("study: s\nruns: [\n", "YAML syntax error: line 3"),
    ({"study": "s", "runs": [LLM], "extra": 1}, "extra: unknown key (allowed: study, description, settings, runs)"),
    ({"study": "../up", "runs": [LLM]}, "study: must match"),
    ({"runs": [LLM]}, "study: is required"),
    ({"study": "s", "runs": []}, "runs: must be a non-empty list"),
    ({"study": "s", "settings": {"sampler_hz": 5}, "runs": [LLM]}, "settings.sampler_hz: must be a number >= 10"),
    ({"study": "s", "settings": {"wait": 1}, "runs": [LLM]}, "settings.wait: unknown key"),
    (_llm(colour="red"), "runs[0].colour: unknown key"),
    (_llm(task="chat"), "runs[0].task: unknown task 'chat' (allowed: lm-arena-chat"),
    (
        _llm(task="image-chat", backend="transformers"),
        "runs[0].backend: backend transformers cannot run task image-chat",
    ),
    (_llm(backend="tgi"), "runs[0].backend: unknown backend 'tgi' (allowed: trivial, vllm"),
    (
        _llm(backend="diffusers"),
        "runs[0].backend: backend diffusers cannot run task lm-arena-chat (it runs: text-to-image",
    ),
    (
        _llm(models=["gpt-5"]),
        "runs[0].models[0]: unknown model 'gpt-5' for backend vllm (known: tiny-llama, tiny-qwen3)",
    ),
    (_llm(models="tiny-llama"), "runs[0].models: must be a non-empty list"),
    (_llm(num_requests=0), "runs[0].num_requests: must be a positive integer, got 0"),
    (_llm(num_requests="8"), "runs[0].num_requests: must be a positive integer, got '8'"),
    (_llm(num_requests=True), "runs[0].num_requests: must be a positive integer, got True"),
    (_llm(grid={"max_num_seqs": []}), "runs[0].grid.max_num_seqs: must not be empty"),
    (_llm(grid={"max_num_seqs": 8}), "runs[0].grid.max_num_seqs: must be a list, got int"),
    (_llm(grid={"max_num_seqs": [8, -1]}), "runs[0].grid.max_num_seqs[1]: must be a positive integer, got -1"),
    (_llm(grid={"max_num_seqs": [8, 8]}), "runs[0].grid.max_num_seqs: repeats a value"),
    (_llm(grid={"precision": ["int3"]}), "runs[0].grid.precision[0]: unknown precision 'int3' (allowed: bfloat16"),
    (
        _llm(grid={"num_gpus": [2], "tensor_parallel": [4]}),
        "runs[0].grid.tensor_parallel: tensor_parallel=4 does not divide num_gpus=2",
    ),
    (
        _llm(grid={"num_gpus": [4], "expert_parallel": [3]}),
        "runs[0].grid.expert_parallel: expert_parallel=3 does not divide num_gpus=4",
    ),
    (_llm(grid={"batch_size": [2]}), "runs[0].grid.batch_size: does not apply to an LLM task (lm-arena-chat)"),
    (_llm(num_iterations=2), "runs[0].num_iterations: does not apply to an LLM task"),
    (_llm(length_source="Nobody/Model"), "runs[0].length_source: no published output lengths for 'Nobody/Model'"),
    (_llm(options=["enforce_eager"]), "runs[0].options: must be a mapping"),
    (
        {"study": "s", "runs": [IMAGE | {"grid": {"max_num_seqs": [8]}}]},
        "runs[0].grid.max_num_seqs: does not apply to a diffusion task",
    ),
    ({"study": "s", "runs": [IMAGE | {"num_requests": 8}]}, "runs[0].num_requests: does not apply to a diffusion task"),
    (
        {"study": "s", "runs": [IMAGE | {"grid": {"num_frames": [9]}}]},
        "runs[0].grid.num_frames: must be [1] for text-to-image",
    ),
    (
        {"study": "s", "runs": [LLM, LLM]},
        "runs[1]: repeats configuration lm-arena-chat/tiny-llama max_num_seqs=4 of runs[0]",
    ),
    ("- just\n- a list\n", "top level: must be a mapping"),
]


@pytest.mark.parametrize("doc, message", BAD, ids=[m.split(":")[0] + f"-{i}" for i, (_, m) in enumerate(BAD)])
def test_bad_configs_name_file_field_and_what_is_allowed(tmp_path, doc, message):
    path = _write(tmp_path, doc)
    with pytest.raises(ConfigError) as err:
        load_study(path)
    text = str(err.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_study(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_study(tmp_path)


def test_length_source_from_the_reference_manifest(tmp_path):
    from harness.published import reference

    source = reference.models_with_lengths("lm-arena-chat")[0]
    study = load_study(_write(tmp_path, _llm(length_source=source, max_output_tokens=64)))
    assert study.configurations[0].length_source == source and study.configurations[0].max_output_tokens == 64
