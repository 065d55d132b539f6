"""The power cap and the locked SM clock as grid knobs: parsing, run ids (unchanged for configurations that do not
use them), and preflight's refusals, one line each (outside the GPU's allowed range, no permission, no GPU) --
at the NVML boundary (conftest's fake GPUs, with tests/fake_gpu_settings.py for the settings calls)."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
import yaml

from conftest import FakeGPU
from fake_gpu_settings import FakeSettings
from harness.config import configuration_from_dict
from harness.errors import ConfigError
from harness.orchestration import preflight
from harness.orchestration.preflight import PreflightError, check
from harness.orchestration.runner import measure_study
from harness.orchestration.study import load_study

ROOT = Path(__file__).resolve().parent.parent

# configs/smoke.yaml's run ids before the knobs existed: adding them changed none
# The smoke study's ids: every configuration that was in it before the knobs keeps its id (the new tasks and the
# two-process block add theirs; two batch sizes were cut to make room).
SMOKE_IDS = [
    "1f3a17cad93f",
    "b24751b0c10d",
    "f37ad794496f",
    "71a9427f3457",
    "78cc9144ddae",
    "5cae63d410c8",
    "201590a63015",
    "96b51faf8647",
    "e98b7e965fc3",
    "60f25bbe5e55",
    "71763abff405",
    "3b0e9502b4cc",
    "39c21403c552",
]  # the last: the two-process Ulysses block (a new configuration, new id)


def _study(tmp_path, grid=None, backend="vllm", model="llama-3.1-8b", task="lm-arena-chat"):
    block = {
        "task": task,
        "backend": backend,
        "models": [model],
        "num_requests": 8,
        "grid": {"max_num_seqs": [8], **(grid or {})},
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"study": "caps", "runs": [block]}, sort_keys=False))
    return load_study(path)


# --- the knobs -------------------------------------------------------------------------------------------------


def test_smoke_run_ids_are_unchanged():
    study = load_study(ROOT / "configs" / "smoke.yaml")
    assert [c.run_id for c in study.configurations] == SMOKE_IDS
    assert all(
        "power_limit_watts" not in c.as_dict() and "sm_clock_mhz" not in c.as_dict() for c in study.configurations
    )


def test_power_cap_grid_expands_and_null_keeps_the_plain_id(tmp_path):
    plain = _study(tmp_path).configurations[0]
    study = _study(tmp_path, grid={"power_limit_watts": [None, 300, 450.0], "max_num_seqs": [8, 16]})
    caps = [(c.power_limit_watts, c.max_num_seqs) for c in study.configurations]
    assert caps == [(None, 8), (None, 16), (300, 8), (300, 16), (450, 8), (450, 16)]  # the batch varies fastest
    assert study.configurations[0].run_id == plain.run_id  # null: the host's limit, the id of no knob
    assert len({c.run_id for c in study.configurations}) == 6
    capped = study.configurations[2]
    assert capped.as_dict()["power_limit_watts"] == 300 and "sm_clock_mhz" not in capped.as_dict()
    assert capped.label() == "lm-arena-chat/llama-3.1-8b max_num_seqs=8 @300W"
    assert configuration_from_dict(capped.as_dict()) == capped
    assert configuration_from_dict(capped.as_dict()).run_id == capped.run_id
    same = _study(tmp_path, grid={"power_limit_watts": [300.0]}).configurations[0]
    assert same.run_id == capped.run_id  # 300.0 W and 300 W are one configuration


def test_locked_clock_knob(tmp_path):
    cfg = _study(tmp_path, grid={"sm_clock_mhz": [1410], "power_limit_watts": [400]}).configurations[0]
    assert (cfg.sm_clock_mhz, cfg.power_limit_watts) == (1410, 400)
    assert cfg.label().endswith("max_num_seqs=8 @400W @1410MHz")


@pytest.mark.parametrize(
    "grid, message",
    [
        ({"power_limit_watts": [0]}, "runs[0].grid.power_limit_watts[0]: must be a positive number of watts or null"),
        ({"power_limit_watts": ["300"]}, "runs[0].grid.power_limit_watts[0]: must be a positive number of watts"),
        ({"power_limit_watts": [True]}, "runs[0].grid.power_limit_watts[0]: must be a positive number of watts"),
        ({"power_limit_watts": [300, 300.0]}, "runs[0].grid.power_limit_watts: repeats a value"),
        ({"sm_clock_mhz": [1410.5]}, "runs[0].grid.sm_clock_mhz[0]: must be a positive integer"),
        ({"sm_clock_mhz": [-1]}, "runs[0].grid.sm_clock_mhz[0]: must be a positive integer"),
        ({"power_limit_watts": 300}, "runs[0].grid.power_limit_watts: must be a list"),
    ],
)
def test_bad_knob_values_are_one_line(tmp_path, grid, message):
    with pytest.raises(ConfigError) as err:
        _study(tmp_path, grid=grid)
    assert message in str(err.value) and "\n" not in str(err.value)


# --- preflight -------------------------------------------------------------------------------------------------


@pytest.fixture
def gpu_host(fake_nvml, monkeypatch, tmp_path):
    """``make(count=1, root=True) -> FakeSettings``: fake H100s whose settings calls are file-backed."""

    def make(count=1, root=True):
        gpus = [FakeGPU([(time.time(), 60.0)], uuid=f"GPU-fake-{i:04d}") for i in range(count)]
        fake_nvml(gpus)
        settings = FakeSettings.create(tmp_path / "gpus.json", count=count, root=root)
        settings.install(monkeypatch.setattr, devices=False)
        return settings

    return make


def test_preflight_accepts_a_cap_in_range(gpu_host, tmp_path):
    gpu_host()
    study = _study(tmp_path, grid={"power_limit_watts": [None, 200, 700], "sm_clock_mhz": [None, 1410]})
    host = preflight.host_facts()
    assert all(check(c, host) == [] for c in study.configurations)


def test_preflight_refuses_a_cap_outside_the_allowed_range(gpu_host, tmp_path):
    gpu_host(count=2)
    study = _study(tmp_path, grid={"power_limit_watts": [150, 300], "num_gpus": [2], "tensor_parallel": [2]})
    low, ok = (check(c, preflight.host_facts()) for c in study.configurations)
    assert low == [f"power_limit_watts=150 is outside GPU {i}'s allowed range 200..700 W" for i in (0, 1)]
    assert ok == []
    clock = _study(tmp_path, grid={"sm_clock_mhz": [3000]}).configurations[0]
    expected = "sm_clock_mhz=3000 is outside GPU 0's supported SM clocks 345..1980 MHz"
    assert check(clock, preflight.host_facts()) == [expected]


def test_preflight_refuses_without_permission(gpu_host, tmp_path):
    settings = gpu_host(root=False)
    study = _study(tmp_path, grid={"power_limit_watts": [300]})
    assert check(study.configurations[0], preflight.host_facts()) == [
        "GPU 0: this process may not set the power limit or clocks (NVML_ERROR_NO_PERMISSION; needs root)"
    ]
    assert settings.gpu(0)["limit_mw"] == 700_000


def test_preflight_refuses_a_cap_on_a_cpu_run(no_nvml, tmp_path):
    study = _study(tmp_path, grid={"power_limit_watts": [300]}, backend="trivial", model="cpu-spin", task="cpu-trivial")
    (line,) = check(study.configurations[0], preflight.host_facts())
    assert line.startswith("power_limit_watts=300 needs a GPU; this run uses none (")


def test_measure_refuses_before_anything_one_line_each(gpu_host, tmp_path):
    settings = gpu_host(root=False)
    study = _study(tmp_path, grid={"power_limit_watts": [150, 300, 400], "max_num_seqs": [8, 16]})
    results = tmp_path / "results"
    with pytest.raises(PreflightError) as err:
        measure_study(study, results, progress=False, out=io.StringIO())
    head, *lines = str(err.value).splitlines()
    assert head.startswith("preflight: 6 of 6 configurations") and "nothing was started or written" in head
    series = "  [0] lm-arena-chat/llama-3.1-8b bfloat16 max_num_seqs=8,16"
    range_line = f"{series}: power_limit_watts=150 is outside GPU 0's allowed range 200..700 W"
    permission = (
        f"{series}: GPU 0: this process may not set the power limit or clocks (NVML_ERROR_NO_PERMISSION; needs root)"
    )
    assert lines == [range_line, permission]  # one line per problem, the caps and batches of a series merged
    assert not results.exists()
    assert all(g["limit_mw"] == 700_000 for g in settings.read()["gpus"])
    out = io.StringIO()
    counts = measure_study(study, results, dry_run=True, progress=False, out=out)
    assert counts["refused"] == 6 and range_line.strip() in out.getvalue() and not results.exists()
