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
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from harness.errors import HarnessError
from harness.vocabulary.tasks import OUTPUT_UNIT
from harness.workloads.base import WorkloadError

STUDY = "gpu-check"
BUDGET_S = 450.0  # leave margin under the 8-minute promise

# (study, knobs) for the real check and for the dry run on the CPU
LLM_REAL = dict(model="llama-3.1-8b", task="lm-arena-chat", batches=(8, 32, 128), requests_per_batch=(4, 2, 2),
                max_output_tokens=512, precision="bfloat16", options={})
LLM_DRY = dict(model="tiny-llama", task="lm-arena-chat", batches=(2, 4, 8), requests_per_batch=(3, 2, 2),
               max_output_tokens=12, precision="float32", options={"output_length_scale": 0.05})
IMAGE_REAL = dict(model="sd3.5-medium", batches=(1, 4), steps=28, height=1024, width=1024, iterations=2,
                  precision="bfloat16")
IMAGE_DRY = dict(model="tiny-sd3", batches=(1, 2), steps=2, height=64, width=64, iterations=2, precision="bfloat16")


def llm_configs(spec: dict, study: str):
    from harness.config import configuration_from_dict

    out = []
    for batch, per in zip(spec["batches"], spec["requests_per_batch"]):
        out.append(configuration_from_dict(dict(
            study=study, task=spec["task"], family="llm-chat", backend="transformers", model=spec["model"],
            num_gpus=1, tensor_parallel=1, expert_parallel=1, precision=spec["precision"], max_num_seqs=batch,
            max_num_batched_tokens=8192, batch_size=None, inference_steps=None, height=None, width=None,
            num_frames=None, num_requests=batch * per, num_iterations=None, seed=0, length_source=None,
            max_output_tokens=spec["max_output_tokens"], options=dict(spec["options"]))))
    return out


def image_configs(spec: dict, study: str):
    from harness.config import configuration_from_dict

    return [configuration_from_dict(dict(
        study=study, task="text-to-image", family="text-to-image", backend="diffusers", model=spec["model"],
        num_gpus=1, tensor_parallel=1, expert_parallel=1, precision=spec["precision"], max_num_seqs=None,
        max_num_batched_tokens=None, batch_size=batch, inference_steps=spec["steps"], height=spec["height"],
        width=spec["width"], num_frames=1, num_requests=None, num_iterations=spec["iterations"], seed=0,
        length_source=None, max_output_tokens=None, options={})) for batch in spec["batches"]]


# --- energy: Zeus where it imports, else NVML's counter read directly --------------------------------


class NvmlCounterMonitor:
    """The slice of ``zeus.monitor.ZeusMonitor`` that :class:`harness.measuring.energy.ZeusMeter` uses, over NVML."""

    class _Gpus:
        def __init__(self, reader, count):
            self.reader, self.count = reader, count

        def __len__(self):
            return self.count

        def supports_get_total_energy_consumption(self, index):
            return self.reader.energy_joules(index) is not None

    class _Measurement:
        def __init__(self, gpu_energy):
            self.gpu_energy, self.cpu_energy, self.dram_energy = gpu_energy, None, None

    def __init__(self, gpu_indices=None):
        from harness.measuring.telemetry import NvmlReader

        everything = NvmlReader(None)
        count = len(everything.handles)
        self.reader = everything if gpu_indices is None else NvmlReader(list(gpu_indices))
        self.gpus = self._Gpus(everything, count)
        self.cpu_indices = []
        self._open = {}

    def begin_window(self, name, sync_execution=False):
        self._open[name] = {i: self.reader.energy_joules(i) for i in self.reader.handles}

    def end_window(self, name, sync_execution=False, cancel=False):
        start = self._open.pop(name)
        if cancel:
            return None
        out = {}
        for i, before in start.items():
            after = self.reader.energy_joules(i)
            out[i] = None if before is None or after is None else after - before
        return self._Measurement(out)


def open_check_meter(num_gpus: int):
    """A meter over GPUs ``0..num_gpus-1``; Zeus if it imports, else NVML's counter (recorded as such)."""
    from harness.measuring.energy import ZeusMeter

    indices = list(range(num_gpus))
    meter = ZeusMeter(indices)
    if num_gpus and not meter.has_gpu_energy and meter.gpu_source.startswith("none: Zeus unavailable"):
        reason = meter.gpu_source
        meter = ZeusMeter(indices, monitor_factory=NvmlCounterMonitor)
        if meter.has_gpu_energy:
            meter.gpu_source = f"nvml-energy-counter (read directly; {reason.removeprefix('none: ')})"
            meter.cpu_source = "cpu: not measured (Zeus unavailable)"
    return meter


# --- a minimal power timeline (NVML only; no pandas) --------------------------------------------------


class PowerTimeline:
    def __init__(self, gpu_indices: list[int], hz: float = 10.0):
        from harness.measuring.telemetry import NVML_COLUMNS, NvmlReader

        self.columns = ("time_s", "gpu_index") + NVML_COLUMNS
        self.reader = NvmlReader(gpu_indices) if gpu_indices else None
        self.rows: list[tuple] = []
        self.errors: list[str] = []
        self.period = 1.0 / hz
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self.stop_event.wait(self.period):
            now = time.time()
            for index in self.reader.handles:
                try:
                    self.rows.append((now, index) + self.reader.sample(index))
                except Exception as exc:  # noqa: BLE001 -- keep sampling, keep the evidence
                    if len(self.errors) < 5:
                        self.errors.append(f"{type(exc).__name__}: {exc}")

    def __enter__(self):
        if self.reader is not None and self.reader.available:
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        if self.thread.is_alive():
            self.thread.join(5)

    def as_json(self) -> dict:
        return {"columns": list(self.columns), "rows": self.rows, "errors": self.errors}

    def mean_power_watts(self, start: float, end: float) -> float | None:
        inside = [r for r in self.rows if start <= r[0] <= end and r[2] is not None]
        if not inside:
            return None
        per_time: dict[float, float] = {}
        for r in inside:
            per_time[r[0]] = per_time.get(r[0], 0.0) + r[2]
        return sum(per_time.values()) / len(per_time)


# --- one run ----------------------------------------------------------------------------------------------


def _window_dict(w) -> dict:
    return {"start_time_s": w.start_time_s, "end_time_s": w.end_time_s, "duration_s": w.duration_s,
            "gpu_energy_joules": w.gpu_energy_joules, "cpu_energy_joules": w.cpu_energy_joules,
            "dram_energy_joules": w.dram_energy_joules, "energy_source": w.energy_source}


def measure(cfg, out_dir: Path, env: dict, idle_power: dict, on_gpu: bool) -> dict:
    """Measure one configuration into ``out_dir/<study>/<run-id>/`` in the run store's format."""
    from harness.measuring import steady, store
    from harness.workloads import registry

    run_dir = store.run_path(out_dir, cfg.study, cfg.run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    started, t0 = time.strftime("%Y-%m-%dT%H:%M:%S%z"), time.monotonic()
    record = {"run_id": cfg.run_id, "study": cfg.study, "status": "ok", "cause": None, "config": cfg.as_dict(),
              "environment": env, "started_at": started}
    gpus = list(range(cfg.num_gpus)) if on_gpu else []
    meter = open_check_meter(len(gpus))
    backend = registry.get_backend(cfg.backend)
    result = None
    timeline = PowerTimeline(gpus)
    try:
        try:
            backend.start(cfg, run_dir)
            with timeline:
                result = backend.run(cfg, meter)
        finally:
            backend.stop()
    except WorkloadError as exc:
        record.update(status="failed", cause=exc.cause, message=str(exc), log_tail=exc.log_tail or None)
    except Exception as exc:  # noqa: BLE001 -- one broken run must not end the check
        import traceback

        record.update(status="failed", cause=f"crash: {type(exc).__name__}", message=str(exc),
                      log_tail=traceback.format_exc(limit=8))
    finally:
        meter.close()
    record["wall_time_s"] = time.monotonic() - t0
    record["idle_power_watts"] = {str(i): idle_power[i] for i in gpus if i in idle_power}
    record["telemetry"] = {"sampler": "gpu-check NVML sampler (10 Hz)", "errors": timeline.errors}
    (run_dir / "timeline.json").write_text(json.dumps(timeline.as_json()) + "\n")
    if record["status"] == "ok":
        windows = {**meter.windows, **result.windows}
        record["windows"] = {name: _window_dict(w) for name, w in windows.items()}
        record["backend_info"] = result.info
        if cfg.is_llm:
            metrics, rows = steady.llm_metrics(result.requests, windows, cfg.max_num_seqs)
            (run_dir / "requests.json").write_text(json.dumps(rows) + "\n")
        else:
            unit = OUTPUT_UNIT[cfg.task]
            metrics, rows = steady.diffusion_metrics(result.iterations, windows, unit)
            (run_dir / "iterations.json").write_text(json.dumps(rows) + "\n")
        start, end = metrics.get("steady_start_time_s"), metrics.get("steady_end_time_s")
        if start is not None and end is not None:
            metrics["avg_sampled_power_watts"] = timeline.mean_power_watts(start, end)
        idle = [idle_power[i] for i in gpus if i in idle_power]
        metrics["idle_power_watts"] = sum(idle) / len(idle) if idle else None
        limits = [p for p in env.get("power_limit_watts") or [] if p is not None]
        stable, reason, codes = steady.validity(
            metrics, is_llm=cfg.is_llm, on_gpu=on_gpu, max_num_seqs=cfg.max_num_seqs, num_gpus=len(gpus) or 1,
            idle_power_watts=idle, power_limit_watts=limits, coverage=None,
            sampler_errors=len(timeline.errors))
        record.update(metrics=metrics, is_stable=stable, unstable_reason=reason, failed_checks=codes)
    else:
        record.update(is_stable=False, unstable_reason=f"failed: {record['cause']}")
    record["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    store.write_run(run_dir, record)
    return record


# --- the check ----------------------------------------------------------------------------------------------


# --- carried wheels: what the check imports beyond the host's torch, transformers and nvidia-ml-py ----------

# The check machine (one GPU): Python 3.12, torch 2.11, transformers 5.17; its huggingface_hub unknown and
# maybe no requests. diffusers 0.42.1 needs huggingface_hub >= 1.32 and imports requests; zeus.monitor imports
# scikit-learn and httpx: ``--collect-wheels`` resolves all of it for that machine, ``--wheels`` checks it.
CHECK_MACHINE = {"python_version": "3.12", "keeps": ("transformers==5.17.0",)}
CARRY_FROM_LOCK = ("diffusers", "zeus", "nvidia-ml-py")  # pinned as in requirements/lock-gpu.txt
# what the check imports from the carried wheels, and what fails without it
CARRIED_IMPORTS = {"diffusers": "the image runs", "huggingface_hub": "diffusers", "requests": "diffusers",
                   "zeus.monitor": "energy through Zeus (else NVML's counter, read directly)",
                   "sklearn": "zeus.monitor", "httpx": "zeus.monitor"}
NOT_CARRIED = re.compile(r"^(torch|torchvision|torchaudio|triton|nvidia-(?!ml-py).*|cuda-.*)$")  # the host's own


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def carried_requirements(lock: Path, keeps=CHECK_MACHINE["keeps"]) -> list[str]:
    """The check's own packages at the harness GPU lock's versions, beside what the machine keeps."""
    pins = {}
    for line in Path(lock).read_text().splitlines():
        name, sep, version = line.split("#", 1)[0].strip().partition("==")
        if sep:
            pins[_canon(name)] = version
    return [f"{name}=={pins[name]}" for name in CARRY_FROM_LOCK] + list(keeps)


def collect_wheels(dest: Path, python_version: str = CHECK_MACHINE["python_version"],
                   keeps=CHECK_MACHINE["keeps"], lock: Path | None = None, log=print) -> dict:
    """On a host with PyPI: resolve the check's packages for the check machine (linux x86_64, its Python,
    its transformers kept) and download every wheel it lacks into ``dest`` with a manifest."""
    import tempfile

    lock = lock or Path(__file__).resolve().parents[2] / "requirements" / "lock-gpu.txt"
    reqs = carried_requirements(lock, keeps)
    kept = {_canon(re.split(r"[<>=!~ ]", k, maxsplit=1)[0]) for k in keeps}
    abi = "cp" + python_version.replace(".", "")
    plat = ["--python-version", python_version, "--implementation", "cp", "--abi", abi, "--only-binary=:all:"]
    for tag in [f"manylinux_2_{m}_x86_64" for m in range(28, 4, -1)] + ["manylinux2014_x86_64", "manylinux1_x86_64"]:
        plat += ["--platform", tag]
    with tempfile.TemporaryDirectory(prefix="gpu-check-resolve-") as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                        "--report", str(report), *plat, *reqs], check=True)
        resolved = json.loads(report.read_text())["install"]
    carry = sorted(f"{i['metadata']['name']}=={i['metadata']['version']}" for i in resolved
                   if _canon(i["metadata"]["name"]) not in kept and not NOT_CARRIED.match(_canon(i["metadata"]["name"])))
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(dest), *plat, *carry],
                   check=True)
    manifest = {"python_version": python_version, "machine_keeps": list(keeps), "requirements": reqs,
                "wheels": carry}
    (dest / "carried.json").write_text(json.dumps(manifest, indent=1) + "\n")
    log(f"collected {len(carry)} wheels for CPython {python_version} into {dest}")
    return manifest


def _install_wheels(wheels: Path, out: Path) -> tuple[list[str], Path | None]:
    """Install carried wheels (no index, no dependencies) into a folder outside the results and put it first
    on sys.path. Returns the wheels' names and the folder."""
    import atexit
    import shutil
    import tempfile

    wheels, out = Path(wheels).resolve(), Path(out).resolve()
    if wheels == out or out in wheels.parents:
        raise HarnessError(f"carried wheels ({wheels}) must not lie inside the results folder ({out})")
    found = sorted(str(p) for p in wheels.glob("*.whl"))
    if not found:
        return [], None
    site = Path(tempfile.mkdtemp(prefix="gpu-check-site-"))
    atexit.register(shutil.rmtree, site, True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--target", str(site), *found], check=True)
    sys.path.insert(0, str(site))
    import importlib

    importlib.invalidate_caches()
    return [Path(p).name for p in found], site


def check_carried(site: Path | None, wheels: list[str]) -> tuple[dict, list[str]]:
    """Import what the check needs and compare each carried distribution's version with the one Python
    sees. Returns ``(facts, problems)``; a problem is one line naming the package and its cause."""
    import importlib
    from importlib import metadata

    facts, problems = {"site": str(site) if site else None, "imports": {}, "versions": {}}, []
    for module, needed_by in CARRIED_IMPORTS.items():
        try:
            importlib.import_module(module)
            facts["imports"][module] = "ok"
        except Exception as exc:  # noqa: BLE001 -- any failure means: not usable here
            facts["imports"][module] = f"{type(exc).__name__}: {exc}"
            problems.append(f"import {module} failed ({type(exc).__name__}: {exc}); {needed_by} need(s) it")
    for wheel in wheels:
        dist, version = wheel.split("-")[:2]
        try:
            seen = metadata.version(dist)
        except metadata.PackageNotFoundError:
            seen = None
        facts["versions"][_canon(dist)] = seen
        if seen != version:
            problems.append(f"carried {dist} {version} is shadowed: Python sees {seen}")
    return facts, problems


def _device_facts() -> dict:
    import torch

    facts = {"torch": torch.__version__, "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        facts.update(device_name=props.name, compute_capability=f"{props.major}.{props.minor}",
                     memory_gib=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda,
                     cudnn=torch.backends.cudnn.version())
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


def run_check(out: Path, dry_run: bool = False, lengths_file: Path | None = None, budget_s: float = BUDGET_S,
              log=print, carried: tuple[Path | None, list[str]] | None = None) -> dict:
    """The check; ``carried``: ``(site folder, wheel names)`` from ``--wheels``, checked before any run."""
    from harness.errors import HarnessError
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
    study = f"{STUDY}-dry" if dry_run else STUDY
    # idle power first: nothing has initialised CUDA yet (the device facts and the imports below may)
    idle = measure_idle_power(10.0, [0]) if on_gpu else {}
    if idle:
        log(f"idle power: {', '.join(f'GPU {i}: {w:.1f} W' for i, w in idle.items())}")
    env_doc = dict(env, device=_device_facts(), dry_run=dry_run, idle_power_before_cuda_init=bool(idle))
    if carried is not None:
        facts, problems = check_carried(*carried)
        env_doc["carried_wheels"] = dict(facts, wheels=carried[1], problems=problems)
        store.atomic_write_json(out / "environment.json", store.clean_json(env_doc))
        if problems:
            raise HarnessError("carried wheels incomplete: " + "; ".join(problems))
    store.atomic_write_json(out / "environment.json", store.clean_json(env_doc))
    configs = llm_configs(LLM_DRY if dry_run else LLM_REAL, study) + \
        image_configs(IMAGE_DRY if dry_run else IMAGE_REAL, study)
    from harness.errors import ReferenceDataError

    for cfg in configs:
        if cfg.is_llm:
            try:
                lengths.plan_for(cfg)
            except ReferenceDataError as exc:
                raise HarnessError(f"{exc}; on a host without the reference data, run `scripts/gpu-check --prepare "
                                   f"FILE{' --dry-run' if dry_run else ''}` where it exists and pass --lengths FILE") from None
    summary = {"study": study, "dry_run": dry_run, "gpu_model": env.get("gpu_model"), "runs": []}
    for cfg in configs:
        spent = time.monotonic() - t_start
        if spent > budget_s:
            entry = {"run_id": cfg.run_id, "label": cfg.label(), "status": "skipped",
                     "cause": f"time budget of {budget_s:g} s spent ({spent:.0f} s)"}
        else:
            record = measure(cfg, out, env, idle, on_gpu)
            m = record.get("metrics") or {}
            entry = {"run_id": cfg.run_id, "label": cfg.label(), "status": record["status"],
                     "cause": record.get("cause"), "wall_time_s": round(record["wall_time_s"], 2),
                     "is_stable": record.get("is_stable"), "unstable_reason": record.get("unstable_reason"),
                     **{k: m.get(k) for k in ("energy_per_token_joules", "energy_per_image_joules",
                                             "energy_per_output_joules", "avg_power_watts",
                                             "output_throughput_tokens_per_sec", "median_itl_ms",
                                             "batch_latency_s", "steady_duration_s", "avg_batch_size",
                                             "energy_source") if k in m}}
        summary["runs"].append(entry)
        log(f"{entry['status']:8s} {entry['label']:45s} " + (
            f"{entry.get('wall_time_s', 0):7.1f} s" if "wall_time_s" in entry else entry.get("cause", "")))
    summary["total_wall_time_s"] = round(time.monotonic() - t_start, 2)
    store.atomic_write_json(out / "gpu-check.json", store.clean_json(summary))
    log(f"gpu-check finished in {summary['total_wall_time_s']} s; results in {out}")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/gpu-check", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", help="folder for results and the environment capture")
    parser.add_argument("--dry-run", action="store_true", help="the same path at tiny sizes on the CPU")
    parser.add_argument("--wheels", help="folder of carried wheels to install (no index, no dependencies) "
                                         "and check before any run; never inside the output folder")
    parser.add_argument("--collect-wheels", metavar="DIR",
                        help="on a host with PyPI: download the wheels the check machine lacks into DIR")
    parser.add_argument("--python-version", default=CHECK_MACHINE["python_version"],
                        help="the check machine's Python, for --collect-wheels (default %(default)s)")
    parser.add_argument("--keep", action="append", metavar="PIN",
                        help="a package the check machine has and keeps (default: "
                             f"{', '.join(CHECK_MACHINE['keeps'])}), for --collect-wheels")
    parser.add_argument("--lengths", help="length plans prepared with --prepare (where the reference data is absent)")
    parser.add_argument("--prepare", metavar="FILE", help="only draw the LLM lengths into FILE (needs the reference)")
    parser.add_argument("--budget-s", type=float, default=BUDGET_S, help="skip runs once this many seconds are spent")
    args = parser.parse_args(argv)
    if args.prepare:
        print(f"wrote {prepare(Path(args.prepare), args.dry_run)}")
        return 0
    if args.collect_wheels:
        collect_wheels(Path(args.collect_wheels), args.python_version, tuple(args.keep or CHECK_MACHINE["keeps"]))
        return 0
    if not args.out:
        parser.error("the output folder is required")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        carried = None
        if args.wheels:
            names, site = _install_wheels(Path(args.wheels), out)
            print(f"installed carried wheels: {', '.join(names) or 'none found'}")
            carried = (site, names)
        summary = run_check(out, args.dry_run, Path(args.lengths) if args.lengths else None, args.budget_s,
                            carried=carried)
    except Exception as exc:  # noqa: BLE001 -- print one line naming the cause
        from harness.errors import HarnessError

        if isinstance(exc, HarnessError):
            print(f"gpu-check: {exc}", file=sys.stderr)
            return 2
        raise
    return 0 if all(r["status"] == "ok" for r in summary["runs"]) else 1
