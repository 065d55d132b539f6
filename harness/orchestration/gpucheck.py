"""``scripts/gpu-check``: a short, self-contained measurement on one GPU.

It measures the Llama-3.1-8B architecture (random weights) on chat at three
batch sizes through the transformers backend, and one image pipeline (SD 3.5
Medium architecture) at two batch sizes through the diffusers backend, and
writes the results and an environment capture to the folder given as its
argument. It is made for a bare GPU host without network: only torch,
transformers and nvidia-ml-py need to be installed. The rest comes as carried
wheels: ``scripts/gpu-check --collect-wheels DIR`` (on a host with PyPI)
resolves diffusers, Zeus and everything they import (huggingface_hub >= 1.32,
requests, scikit-learn, httpx, ...) for the check machine's Python with its own
transformers kept, and downloads them; ``--wheels DIR`` installs them with
``pip --no-index --no-deps`` into a temporary folder (never the results folder),
imports each and checks that the carried versions are the ones Python sees,
before any run -- one line per problem. Energy comes from Zeus where it
imports, else from the same NVML energy counter read directly (the run records
which). Idle power is read before anything initialises CUDA.

Lengths need the reference data's published histogram; where that is not
readable, prepare the drawn lengths first on a host that has it
(``scripts/gpu-check --prepare FILE``) and pass ``--lengths FILE``.

Output layout (readable by :func:`harness.measuring.store.collect`)::

    OUT/environment.json            host, GPU, driver, packages, git commit
    OUT/gpu-check.json              summary: every run's status, key metrics and wall time
    OUT/<study>/<run-id>/           run.json, requests.json or iterations.json, timeline.json,
                                    server.log, checksums.sha256

``--dry-run`` runs the same path at tiny sizes on the CPU (tiny-llama, tiny-sd3).

The check is a small study (:func:`check_study`) and each run goes through the sweep's own steps
(:mod:`harness.orchestration.execute`: the incomplete marker, the backend's life, the outcome, the
record's windows and validity flags), instrumented for a bare host: the measuring layer's meter with its
NVML fallback (:func:`harness.measuring.energy.open_meter_with_nvml_fallback`) and its telemetry sampler
handing over plain rows (no pandas); the tables are JSON. The carried wheels are
:mod:`harness.orchestration.wheels`; the command line is :mod:`harness.cli.gpu_check`.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from harness.config import Configuration, Settings, Study
from harness.errors import HarnessError
from harness.orchestration import execute, records, wheels
from harness.orchestration.execute import Instruments, Run, RunStart
from harness.orchestration.signals import signals_deferred
from harness.vocabulary.tasks import OUTPUT_UNIT

STUDY = "gpu-check"
BUDGET_S = 450.0  # leave margin under the 8-minute promise
IDLE_POWER_S = 10.0  # idle power is averaged over this long, before CUDA is initialised
# No run timeout and no pause between runs: the time budget bounds the check.
SETTINGS = Settings(cooldown_s=0.0, idle_power_s=IDLE_POWER_S, sampler_hz=10.0, run_timeout_s=0.0)

# (study, knobs) for the real check and for the dry run on the CPU
LLM_REAL = dict(
    model="llama-3.1-8b",
    task="lm-arena-chat",
    batches=(8, 32, 128),
    requests_per_batch=(4, 2, 2),
    max_output_tokens=512,
    precision="bfloat16",
    options={},
)
LLM_DRY = dict(
    model="tiny-llama",
    task="lm-arena-chat",
    batches=(2, 4, 8),
    requests_per_batch=(3, 2, 2),
    max_output_tokens=12,
    precision="float32",
    options={"output_length_scale": 0.05},
)
IMAGE_REAL = dict(
    model="sd3.5-medium", batches=(1, 4), steps=28, height=1024, width=1024, iterations=2, precision="bfloat16"
)
IMAGE_DRY = dict(model="tiny-sd3", batches=(1, 2), steps=2, height=64, width=64, iterations=2, precision="bfloat16")
SUMMARY_METRICS = (
    "energy_per_token_joules",
    "energy_per_image_joules",
    "energy_per_output_joules",
    "avg_power_watts",
    "output_throughput_tokens_per_sec",
    "median_itl_ms",
    "batch_latency_s",
    "steady_duration_s",
    "avg_batch_size",
    "energy_source",
)


def llm_configs(spec: dict, study: str) -> list[Configuration]:
    """The chat runs: one per batch size (``max_num_seqs``), ``batch x requests_per_batch`` requests each."""
    from harness.config import configuration_from_dict

    out = []
    for batch, per in zip(spec["batches"], spec["requests_per_batch"], strict=False):
        out.append(
            configuration_from_dict(
                dict(
                    study=study,
                    task=spec["task"],
                    family="llm-chat",
                    backend="transformers",
                    model=spec["model"],
                    num_gpus=1,
                    tensor_parallel=1,
                    expert_parallel=1,
                    precision=spec["precision"],
                    max_num_seqs=batch,
                    max_num_batched_tokens=8192,
                    batch_size=None,
                    inference_steps=None,
                    height=None,
                    width=None,
                    num_frames=None,
                    num_requests=batch * per,
                    num_iterations=None,
                    seed=0,
                    length_source=None,
                    max_output_tokens=spec["max_output_tokens"],
                    options=dict(spec["options"]),
                )
            )
        )
    return out


def image_configs(spec: dict, study: str) -> list[Configuration]:
    """The image runs: one per batch size, ``iterations`` measured batches each."""
    from harness.config import configuration_from_dict

    return [
        configuration_from_dict(
            dict(
                study=study,
                task="text-to-image",
                family="text-to-image",
                backend="diffusers",
                model=spec["model"],
                num_gpus=1,
                tensor_parallel=1,
                expert_parallel=1,
                precision=spec["precision"],
                max_num_seqs=None,
                max_num_batched_tokens=None,
                batch_size=batch,
                inference_steps=spec["steps"],
                height=spec["height"],
                width=spec["width"],
                num_frames=1,
                num_requests=None,
                num_iterations=spec["iterations"],
                seed=0,
                length_source=None,
                max_output_tokens=None,
                options={},
            )
        )
        for batch in spec["batches"]
    ]


def check_study(dry_run: bool = False) -> Study:
    """The check as a study: the chat runs, then the image runs (tiny models on the CPU for a dry run)."""
    name = f"{STUDY}-dry" if dry_run else STUDY
    configurations = llm_configs(LLM_DRY if dry_run else LLM_REAL, name) + image_configs(
        IMAGE_DRY if dry_run else IMAGE_REAL, name
    )
    return Study(
        name=name,
        path=Path(__file__),
        description=(__doc__ or "").split("\n\n")[0],
        settings=SETTINGS,
        configurations=tuple(configurations),
    )


# --- one run ----------------------------------------------------------------------------------------------


def check_instruments() -> Instruments:
    """A bare host's instruments: Zeus or NVML's counter read directly; telemetry rows without pandas."""
    from harness.measuring import energy
    from harness.measuring.telemetry import Telemetry

    return Instruments(
        open_meter=energy.open_meter_with_nvml_fallback,
        read_timeline=Telemetry.stop_rows,
        sampler_hz=SETTINGS.sampler_hz,
        run_timeout_s=SETTINGS.run_timeout_s,
    )


def measure(cfg: Configuration, out_dir: Path, env: dict, idle_power: dict[int, float], on_gpu: bool) -> dict:
    """Measure one configuration into ``out_dir/<study>/<run-id>/`` in the run store's format; its record.

    ``idle_power``: each GPU's idle power before CUDA was initialised (W, by GPU index); ``on_gpu``: energy and
    GPU telemetry are measured (False in the dry run).
    """
    from harness.measuring import store
    from harness.measuring.telemetry import COLUMNS

    run_dir = store.run_path(out_dir, cfg.study, cfg.run_id)
    run = execute.begin(
        RunStart(cfg=cfg, study=cfg.study, run_dir=run_dir, env=env, idle_power_watts=idle_power, on_gpu=on_gpu)
    )
    execute.execute(run, check_instruments())
    with signals_deferred():
        execute.conclude(run)
        errors = run.telemetry.errors if run.telemetry is not None else []
        timeline = {"columns": list(COLUMNS), "rows": run.timeline or [], "errors": errors}
        (run_dir / "timeline.json").write_text(json.dumps(timeline) + "\n")
        if run.status == "ok":
            try:
                _summarize(run)
            except Exception as exc:  # noqa: BLE001 -- bad records from a backend: keep the evidence, fail the run
                execute.fail_in_metrics(run, exc)
        execute.mark_unstable_unless_ok(run)
        store.write_run(run_dir, run.record)
    if run.interrupted is not None:
        raise run.interrupted
    return run.record


def _summarize(run: Run) -> None:
    """Windows, metrics (:mod:`harness.measuring.steady`) and validity flags of a finished check run; the
    per-request or per-iteration rows go to requests.json or iterations.json (no pandas on a bare host)."""
    from harness.measuring import steady

    cfg, result, record = run.cfg, run.result, run.record
    windows = records.measured_windows(run.meter, result)
    record["windows"] = records.window_dicts(windows)
    record["backend_info"] = result.info
    if cfg.is_llm:
        metrics, rows = steady.llm_metrics(result.requests, windows, cfg.knob("max_num_seqs"))
        (run.run_dir / "requests.json").write_text(json.dumps(rows) + "\n")
    else:
        metrics, rows = steady.diffusion_metrics(result.iterations, windows, OUTPUT_UNIT[cfg.task])
        (run.run_dir / "iterations.json").write_text(json.dumps(rows) + "\n")
    start, end = metrics.get("steady_start_time_s"), metrics.get("steady_end_time_s")
    if start is not None and end is not None:
        metrics["avg_sampled_power_watts"] = mean_sampled_power_watts(run.timeline or [], start, end)
    idle = run.idle_watts
    metrics["idle_power_watts"] = sum(idle) / len(idle) if idle else None
    execute.validity(run, metrics, coverage=None)


def mean_sampled_power_watts(rows: list[tuple], start: float, end: float) -> float | None:
    """Mean over sampling times in ``[start, end]`` (s) of the GPUs' summed sampled power (W), from telemetry
    rows (:data:`harness.measuring.telemetry.COLUMNS` order); None without a power sample there."""
    per_time: dict[float, float] = {}
    for row in rows:
        time_s, source, power = row[0], row[1], row[3]
        if source == "nvml" and power is not None and start <= time_s <= end:
            per_time[time_s] = per_time.get(time_s, 0.0) + power
    return sum(per_time.values()) / len(per_time) if per_time else None


# --- the check ----------------------------------------------------------------------------------------------


def _device_facts() -> dict:
    """torch's view of the device (name, compute capability, memory in GiB, CUDA) and ``nvidia-smi -q``."""
    import torch

    facts = {"torch": torch.__version__, "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        facts.update(
            device_name=props.name,
            compute_capability=f"{props.major}.{props.minor}",
            memory_gib=round(props.total_memory / 2**30, 1),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
        )
    try:
        smi = subprocess.run(["nvidia-smi", "-q"], capture_output=True, text=True, timeout=20)
        facts["nvidia_smi_q"] = smi.stdout if smi.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        facts["nvidia_smi_q"] = None
    return facts


def prepare(path: Path, dry_run: bool = False) -> Path:
    """Draw the LLM runs' lengths here (reference data needed) for a host that has none."""
    from harness.workloads import lengths

    plans = [lengths.plan_for(cfg) for cfg in llm_configs(LLM_DRY if dry_run else LLM_REAL, STUDY)]
    return lengths.export_plans(plans, path)


def run_check(
    out: Path,
    dry_run: bool = False,
    lengths_file: Path | None = None,
    budget_s: float = BUDGET_S,
    log: Callable[[str], None] = print,
    carried: tuple[Path | None, list[str]] | None = None,
) -> dict:
    """The check; ``carried``: ``(site folder, wheel names)`` from ``--wheels``, checked before any run.

    ``budget_s``: once this many seconds are spent, the remaining runs are recorded as skipped.
    """
    from harness.errors import ReferenceDataError
    from harness.measuring import envinfo, store
    from harness.measuring.telemetry import measure_idle_power
    from harness.workloads import lengths

    t_start = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    if lengths_file is not None:
        log(f"loaded {lengths.load_plans(lengths_file)} prepared length plans from {lengths_file}")
    env = envinfo.capture()
    on_gpu = env.get("gpu_count", 0) > 0 and not dry_run
    if not dry_run and not on_gpu:
        raise SystemExit("gpu-check: no NVIDIA GPU visible through NVML (use --dry-run on a CPU host)")
    study = check_study(dry_run)
    # idle power first: nothing has initialised CUDA yet (the device facts and the imports below may)
    idle = measure_idle_power(study.settings.idle_power_s, [0]) if on_gpu else {}
    if idle:
        log(f"idle power: {', '.join(f'GPU {i}: {w:.1f} W' for i, w in idle.items())}")
    env_doc = dict(env, device=_device_facts(), dry_run=dry_run, idle_power_before_cuda_init=bool(idle))
    if carried is not None:
        facts, problems = wheels.check_carried(*carried)
        env_doc["carried_wheels"] = dict(facts, wheels=carried[1], problems=problems)
        store.atomic_write_json(out / "environment.json", store.clean_json(env_doc))
        if problems:
            raise HarnessError("carried wheels incomplete: " + "; ".join(problems))
    store.atomic_write_json(out / "environment.json", store.clean_json(env_doc))
    for cfg in study.configurations:
        if cfg.is_llm:
            try:
                lengths.plan_for(cfg)
            except ReferenceDataError as exc:
                raise HarnessError(
                    f"{exc}; on a host without the reference data, run `scripts/gpu-check --prepare "
                    f"FILE{' --dry-run' if dry_run else ''}` where it exists and pass --lengths FILE"
                ) from None
    summary: dict = {"study": study.name, "dry_run": dry_run, "gpu_model": env.get("gpu_model"), "runs": []}
    for cfg in study.configurations:
        spent = time.monotonic() - t_start
        entry: dict[str, object]
        if spent > budget_s:
            entry = {
                "run_id": cfg.run_id,
                "label": cfg.label(),
                "status": "skipped",
                "cause": f"time budget of {budget_s:g} s spent ({spent:.0f} s)",
            }
        else:
            record = measure(cfg, out, env, idle, on_gpu)
            m = record.get("metrics") or {}
            entry = {
                "run_id": cfg.run_id,
                "label": cfg.label(),
                "status": record["status"],
                "cause": record.get("cause"),
                "wall_time_s": round(record["wall_time_s"], 2),
                "is_stable": record.get("is_stable"),
                "unstable_reason": record.get("unstable_reason"),
                **{k: m.get(k) for k in SUMMARY_METRICS if k in m},
            }
        summary["runs"].append(entry)
        log(
            f"{entry['status']:8s} {entry['label']:45s} "
            + (f"{entry.get('wall_time_s', 0):7.1f} s" if "wall_time_s" in entry else str(entry.get("cause", "")))
        )
    summary["total_wall_time_s"] = round(time.monotonic() - t_start, 2)
    store.atomic_write_json(out / "gpu-check.json", store.clean_json(summary))
    log(f"gpu-check finished in {summary['total_wall_time_s']} s; results in {out}")
    return summary
