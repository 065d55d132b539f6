"""Safety (issue 6): servers bind to loopback only, configs are loaded safely, nothing is unpickled,
``trust_remote_code`` stays off unless a config turns it on, and no path from a config leaves the
results folder.

Servers are checked on a real subprocess: the vLLM backend's own launch code starts the stand-in
server of :mod:`fake_vllm`, which records the address it actually bound.
"""

from __future__ import annotations

import ast
import io
from pathlib import Path

import psutil
import pytest
import yaml

import fake_vllm
from harness import config as config_module
from harness.errors import ConfigError, HarnessError
from harness.measuring import store
from harness.orchestration.runner import measure_study
from harness.orchestration.study import load_study
from support import llm_configuration

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "harness"


# --- servers listen on loopback only -------------------------------------------------------------------


def _vllm_cfg(**options):
    return llm_configuration(options=options)


def _started(tmp_path, monkeypatch, **options) -> tuple[dict, dict, list]:
    """Start and stop the vLLM backend against the stand-in; (backend info, what the server bound, its sockets)."""
    from harness.workloads.vllm_backend import VLLMBackend

    pids = fake_vllm.use(monkeypatch, tmp_path)
    backend = VLLMBackend()
    try:
        backend.start(_vllm_cfg(**options), tmp_path / "run")
        (bound,) = fake_vllm.servers(pids)
        sockets = [
            c.laddr for c in psutil.Process(bound["pid"]).net_connections(kind="inet") if c.status == psutil.CONN_LISTEN
        ]
        urls = (backend.base_url, backend.metrics_url)
    finally:
        backend.stop()
    assert not fake_vllm.alive(bound["pid"])
    return dict(backend.info, urls=urls), bound, sockets


def test_the_vllm_server_listens_on_loopback_only(tmp_path, vllm_env, monkeypatch):
    info, bound, sockets = _started(tmp_path, monkeypatch)
    argv = info["server_argv"]
    assert argv.count("--host") == 1 and argv[argv.index("--host") + 1] == "127.0.0.1"
    assert bound["host"] == "127.0.0.1" and bound["port"] == info["port"]
    assert sockets and all(addr.ip == "127.0.0.1" for addr in sockets)
    assert all(url.startswith(f"http://127.0.0.1:{info['port']}") for url in info["urls"])


def test_extra_args_cannot_move_the_server_off_loopback(tmp_path, vllm_env, monkeypatch):
    try:
        _, bound, sockets = _started(tmp_path, monkeypatch, extra_args=["--host", "0.0.0.0"])
    except HarnessError:  # refused before the server started: the fix this test asks for
        return
    assert bound["host"] == "127.0.0.1" and all(addr.ip == "127.0.0.1" for addr in sockets)


def test_loopback_traffic_never_goes_through_a_proxy(tmp_path, vllm_env, monkeypatch, no_nvml):
    """A proxy set in the environment (common on clusters) must not capture health checks, the load or
    the /metrics scrape: all of them go straight to the loopback server."""
    fake_vllm.use(monkeypatch, tmp_path, {"token_s": 0.01})
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # the discard port: nothing answers there
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    path = tmp_path / "p.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "study": "p",
                "settings": {"idle_power_s": 0},
                "runs": [
                    {
                        "task": "lm-arena-chat",
                        "backend": "vllm",
                        "models": ["tiny-llama"],
                        "num_requests": 4,
                        "seed": 3,
                        "max_output_tokens": 24,
                        "grid": {"max_num_seqs": [2]},
                    }
                ],
            }
        )
    )
    counts = measure_study(load_study(path), tmp_path / "results", progress=False, out=io.StringIO())
    assert counts == {"ok": 1}
    (run_dir,) = store.iter_run_dirs(tmp_path / "results")
    record = store.read_record(run_dir)
    assert record["telemetry"]["error_count"] == 0, record["telemetry"]["errors"]
    import pandas as pd

    timeline = pd.read_parquet(run_dir / "timeline.parquet")
    assert (timeline["source"] == "vllm").sum() >= 1  # the scrape reached the server


# --- configs are loaded safely -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        "!!python/object/apply:os.system ['touch {marker}']",
        "study: !!python/object/apply:os.system ['touch {marker}']\nruns: []",
        "!!python/object/new:subprocess.Popen [['touch', '{marker}']]",
        "study: !!python/name:os.system\nruns: []",
        "!!python/module:os",
    ],
)
def test_yaml_tags_that_build_python_objects_are_refused(tmp_path, payload):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(payload.format(marker=marker))
    with pytest.raises(ConfigError, match=r"YAML error: line \d+: could not determine a constructor for the tag"):
        load_study(path)
    assert not marker.exists()
    assert issubclass(config_module._yaml_loader(), yaml.SafeLoader)


# --- guards over the source: nothing unpickled, no unsafe loaders, no remote code --------------------------


def _sources() -> list[Path]:
    return sorted(HARNESS.rglob("*.py"))


def _calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
            yield node, owner, name


def _keyword(node, name):
    return next((k.value for k in node.keywords if k.arg == name), None)


def test_no_source_unpickles_or_loads_yaml_unsafely():
    problems = []
    unpicklers = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
    for path in _sources():
        tree = ast.parse(path.read_text(), str(path))
        where = path.relative_to(ROOT)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for name in names:
                    if name.split(".")[0] in unpicklers:
                        problems.append(f"{where}:{node.lineno}: imports {name}")
        for node, owner, name in _calls(tree):
            line = f"{where}:{node.lineno}"
            if name in ("read_pickle", "Unpickler", "unsafe_load", "full_load", "full_load_all", "unsafe_load_all"):
                problems.append(f"{line}: calls {name}")
            if owner == "torch" and name == "load":
                weights_only = _keyword(node, "weights_only")
                if not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
                    problems.append(f"{line}: torch.load without weights_only=True")
            if owner in ("np", "numpy") and name == "load":
                allow = _keyword(node, "allow_pickle")
                if allow is not None and not (isinstance(allow, ast.Constant) and allow.value is False):
                    problems.append(f"{line}: numpy.load with allow_pickle")
            if owner == "yaml" and name in ("load", "load_all"):
                loader = _keyword(node, "Loader")
                text = ast.unparse(loader) if loader is not None else ""
                if "Safe" not in text and "_yaml_loader" not in text:
                    problems.append(f"{line}: yaml.{name} with Loader={text or 'default'}")
            if isinstance(node.func, ast.Name) and name in ("eval", "exec", "__import__"):
                problems.append(f"{line}: calls builtin {name}")
            if owner == "os" and name in ("system", "popen"):
                problems.append(f"{line}: os.{name} runs a shell")
            shell = _keyword(node, "shell")
            if isinstance(shell, ast.Constant) and shell.value is True:
                problems.append(f"{line}: subprocess with shell=True")
    assert problems == []


def test_no_source_turns_trust_remote_code_on_by_itself():
    problems = []
    for path in _sources():
        tree = ast.parse(path.read_text(), str(path))
        where = path.relative_to(ROOT)
        for node, _, name in _calls(tree):
            value = _keyword(node, "trust_remote_code")
            if value is not None and not (isinstance(value, ast.Constant) and value.value is False):
                problems.append(f"{where}:{node.lineno}: {name}(trust_remote_code={ast.unparse(value)})")
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value == "--trust-remote-code":  # noqa: SIM102
                # the backend passes it (only from the option); engine_args names it to refuse it in extra_args
                if where not in (Path("harness/workloads/vllm_backend.py"), Path("harness/workloads/engine_args.py")):
                    problems.append(f"{where}:{node.lineno}: passes --trust-remote-code")
    assert problems == []


def test_trust_remote_code_is_off_unless_the_config_says_true(tmp_path, vllm_env, monkeypatch):
    from harness.workloads.base import BadOption
    from harness.workloads.vllm_backend import OPTIONS

    assert OPTIONS["trust_remote_code"] is False
    for i, value in enumerate(("yes", 1)):  # not a boolean: refused before any server starts
        with pytest.raises(BadOption, match="trust_remote_code: must be true or false"):
            _started(tmp_path / f"bad-{i}", monkeypatch, trust_remote_code=value)
    cases = [({}, False), ({"trust_remote_code": False}, False), ({"trust_remote_code": True}, True)]
    for i, (options, expected) in enumerate(cases):
        info, bound, _ = _started(tmp_path / f"case-{i}", monkeypatch, **options)
        assert ("--trust-remote-code" in info["server_argv"]) is expected, options
        assert ("--trust-remote-code" in bound["argv"]) is expected


# --- paths from configs stay inside the results folder ----------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "../outside",
        "..",
        ".",
        "/tmp/outside",
        "a/b",
        "a/../../b",
        ".hidden",
        "-rf",
        "C:\\outside",
        "Study",
        "name with space",
        "nul\x00byte",
        "",
        "ünï",
    ],
)
def test_study_names_cannot_leave_the_results_folder(tmp_path, name):
    path = tmp_path / "cfg" / "s.yaml"
    path.parent.mkdir()
    path.write_text(
        yaml.safe_dump(
            {
                "study": name,
                "runs": [
                    {"task": "cpu-trivial", "backend": "trivial", "models": ["cpu-spin"], "grid": {"max_num_seqs": [1]}}
                ],
            }
        )
    )
    with pytest.raises(ConfigError, match=r"study: must match"):
        load_study(path)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["cfg", "s.yaml"]


@pytest.mark.parametrize("model", ["../../etc/passwd", "/abs/model", "tiny-llama/../../x"])
def test_model_names_are_architecture_names_not_paths(tmp_path, model):
    path = tmp_path / "m.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "study": "m",
                "runs": [
                    {"task": "lm-arena-chat", "backend": "vllm", "models": [model], "grid": {"max_num_seqs": [1]}}
                ],
            }
        )
    )
    with pytest.raises(ConfigError, match=r"runs\[0\]\.models\[0\]: unknown model"):
        load_study(path)


@pytest.mark.parametrize(
    "study, run_id",
    [
        ("../x", "0123456789ab"),
        ("/abs", "0123456789ab"),
        ("a/b", "0123456789ab"),
        ("..", "0123456789ab"),
        ("s", "../0123"),
        ("s", "/etc"),
        ("s", ""),
        ("s", "a/b"),
        ("s", ".."),
    ],
)
def test_the_store_refuses_run_folders_outside_the_results_folder(tmp_path, study, run_id):
    with pytest.raises(HarnessError, match="is not a plain folder name"):
        store.run_path(tmp_path / "results", study, run_id)


def test_a_study_built_in_python_with_an_escaping_name_writes_nothing(tmp_path, no_nvml):
    import dataclasses

    path = tmp_path / "cfg" / "ok.yaml"
    path.parent.mkdir()
    path.write_text(
        yaml.safe_dump(
            {
                "study": "ok",
                "settings": {"idle_power_s": 0},
                "runs": [
                    {
                        "task": "cpu-trivial",
                        "backend": "trivial",
                        "models": ["cpu-spin"],
                        "num_requests": 4,
                        "grid": {"max_num_seqs": [1]},
                    }
                ],
            }
        )
    )
    study = dataclasses.replace(load_study(path), name="../escaped")
    results = tmp_path / "cfg" / "results"
    with pytest.raises(HarnessError, match=r"study name '../escaped' is not a plain folder name"):
        measure_study(study, results, progress=False, out=io.StringIO())
    assert not (tmp_path / "cfg" / "escaped").exists() and not results.exists()


def test_every_shipped_config_maps_into_its_results_folder(tmp_path):
    results = (tmp_path / "results").resolve()
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        study = load_study(path)
        for cfg in study.configurations:
            run_dir = store.run_path(results, study.name, cfg.run_id).resolve()
            assert run_dir.parent.parent == results and len(cfg.base_run_id) == 12, (path, cfg.run_id)
            assert cfg.run_id == cfg.base_run_id or cfg.run_id == f"{cfg.base_run_id}-r{cfg.repeat}", cfg.run_id
