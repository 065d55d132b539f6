"""The run store: one folder per run, atomic writes, checksums, and the collected table of own runs.

Layout: ``<results>/<study>/<run-id>/`` holding

* ``run.json`` -- config, environment capture, summary metrics (units in names), ``status``
  (``ok`` | ``failed`` | ``incomplete`` | ``skipped``), ``cause``, ``is_stable`` / ``unstable_reason``;
* ``timeline.parquet`` (telemetry), ``requests.parquet`` (LLM) or ``iterations.parquet`` (diffusion);
* ``server.log`` where the backend has one;
* ``checksums.sha256`` -- sha256 of every other file, written last: a run folder is complete only
  when it exists and every file matches it.

Every file is written to a temporary name in the same folder, flushed, fsync'ed and renamed over
the target (``os.replace``), so a process killed mid-write leaves the old file or the new one, never
half of one (:mod:`harness.measuring.atomic_files`). :func:`verify` reports missing, truncated, edited or unlisted
files.

    from harness.measuring import store
    store.write_run(run_dir, record, {"timeline.parquet": frame}, server_log=path)
    store.verify(run_dir)            # [] when intact, else one line per problem
    store.collect("results")         # one tidy row per run, reference column names

    index = store.StudyResults("results", "my-study")
    index.state(run_id)              # result_state, each finished result read and verified once

The command line over the store (``python -m harness list`` and ``show``) is :mod:`harness.cli.runs`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

from harness.config import GPU_SETTING_KNOBS, split_run_id
from harness.errors import HarnessError
from harness.measuring import paths
from harness.measuring.atomic_files import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_parquet,
    clean_json,
)
from harness.vocabulary.tasks import LLM_TASKS, OUTPUT_UNIT

RUN_JSON = "run.json"
CHECKSUMS = "checksums.sha256"
STATUSES = ("ok", "failed", "incomplete", "skipped")
DONE_STATUSES = ("ok", "failed", "skipped")  # a result; "incomplete" and damaged runs are measured again
SCHEMA_VERSION = 1


# --- run folders ----------------------------------------------------------------------------------
def results_folder(results_dir: Path | str) -> Path:
    """``results_dir`` as a Path, resolved once (:func:`harness.measuring.paths.results_root`: run folders are
    proven inside it); a HarnessError when it exists but is not a folder."""
    path = Path(results_dir)
    if path.exists() and not path.is_dir():
        raise HarnessError(f"results folder {path} is a file, not a folder")
    return paths.results_root(path)


_COMPONENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def run_path(results_dir: Path | str, study: str, run_id: str) -> Path:
    """``<results>/<study>/<run-id>``; both names must be plain folder names, and the folder, what it holds and
    its study's ``.replaced`` folder must resolve inside ``results_dir`` (:func:`harness.measuring.paths.prove_run_folder`)."""  # noqa: E501
    for what, name in (("study name", study), ("run id", run_id)):
        if not isinstance(name, str) or not _COMPONENT_RE.fullmatch(name) or ".." in name:
            raise HarnessError(f"{what} {name!r} is not a plain folder name; refusing to write outside {results_dir}")
    return paths.prove_run_folder(results_dir, Path(results_dir) / study / run_id)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _payload_files(run_dir: Path) -> list[Path]:
    """Every regular file of a run folder except the checksum file and hidden temporaries."""
    return sorted(p for p in run_dir.iterdir() if p.is_file() and p.name != CHECKSUMS and not p.name.startswith("."))


def write_checksums(run_dir: Path) -> None:
    lines = [f"{_sha256(p)}  {p.name}\n" for p in _payload_files(run_dir)]
    atomic_write_bytes(run_dir / CHECKSUMS, "".join(lines).encode())


def write_run(run_dir: Path, record: dict, tables: dict | None = None, server_log: Path | None = None) -> None:
    """Write a run's tables, server log and run.json atomically, then its checksums (the commit point)."""
    run_dir = Path(run_dir)
    names = [name for name, frame in (tables or {}).items() if frame is not None]
    paths.prove_files(run_dir, [*names, *(["server.log"] if server_log is not None else []), RUN_JSON, CHECKSUMS])
    run_dir.mkdir(parents=True, exist_ok=True)
    checksums = run_dir / CHECKSUMS
    if checksums.exists():  # the folder is being rewritten: it is not complete until the new checksums exist
        checksums.unlink()
    for name, frame in (tables or {}).items():
        if frame is not None:
            atomic_write_parquet(run_dir / name, frame)
    if server_log is not None:
        server_log = Path(server_log)
        target = run_dir / "server.log"
        if server_log.exists() and server_log.resolve() != target.resolve():
            atomic_write_bytes(target, server_log.read_bytes())
    record = dict(record, schema_version=SCHEMA_VERSION)
    atomic_write_json(run_dir / RUN_JSON, clean_json(record))
    write_checksums(run_dir)


def verify(run_dir: Path) -> list[str]:
    """Problems with a run folder's files ([] when every file matches checksums.sha256)."""
    run_dir = Path(run_dir)
    listing = run_dir / CHECKSUMS
    if not listing.exists():
        return [f"no {CHECKSUMS} (the run never finished writing)"]
    problems = []
    listed = {}
    for line in listing.read_text(errors="replace").splitlines():
        digest, _, name = line.partition("  ")
        if len(digest) != 64 or not name or "/" in name:
            problems.append(f"{CHECKSUMS} has a malformed line: {line[:60]!r}")
            continue
        listed[name] = digest
    for name, digest in listed.items():
        path = run_dir / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif _sha256(path) != digest:
            problems.append(f"{name} was altered or truncated (sha256 differs from {CHECKSUMS})")
    for path in _payload_files(run_dir):
        if path.name not in listed:
            problems.append(f"{path.name} is not listed in {CHECKSUMS}")
    if RUN_JSON not in listed:
        problems.append(f"{RUN_JSON} is missing")
    return problems


def read_record(run_dir: Path) -> dict | None:
    """run.json as a dict, or None when missing or unreadable."""
    try:
        return json.loads((Path(run_dir) / RUN_JSON).read_text())
    except (OSError, ValueError):
        return None


def result_state(run_dir: Path) -> tuple[str, dict | None]:
    """``("missing" | "corrupt" | status, record)`` of a run folder."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return "missing", None
    record = read_record(run_dir)
    if record is None:
        return ("missing", None) if not any(_payload_files(run_dir)) else ("corrupt", None)
    if record.get("status") == "incomplete":
        return "incomplete", record
    if verify(run_dir):
        return "corrupt", record
    return record.get("status", "corrupt"), record


class StudyResults:
    """An index of one study's run folders under a results folder, read once per sweep.

    :func:`result_state` re-hashes every file of a run; a sweep asks for the same runs again and again (its
    plan, then the smaller batches of each series before every run), which grew with the square of a
    series' length. Here each folder is read the first time it is asked for and a finished result (ok,
    failed, skipped: :data:`DONE_STATUSES`, checksums intact) is kept. Anything else (missing, incomplete,
    damaged) is read again at the next question: another process (a parallel sweep, a Slurm array task) may
    be writing it. A process that writes a run calls :meth:`forget` so its next question reads the new files.
    """

    def __init__(self, results_dir: Path | str, study: str):
        self.results_dir, self.study = Path(results_dir), study
        self._done: dict[str, tuple[str, dict | None]] = {}

    def path(self, run_id: str) -> Path:
        """The run's folder, ``<results>/<study>/<run-id>`` (:func:`run_path`)."""
        return run_path(self.results_dir, self.study, run_id)

    def state(self, run_id: str) -> tuple[str, dict | None]:
        """:func:`result_state` of the run: ``("missing" | "corrupt" | status, record)``."""
        known = self._done.get(run_id)
        if known is not None:
            return known
        state, record = result_state(self.path(run_id))
        if state in DONE_STATUSES:
            self._done[run_id] = (state, record)
        return state, record

    def note(self, run_id: str, state: str, record: dict | None) -> None:
        """Keep a state this process has just read from disk itself (a finished result only)."""
        if state in DONE_STATUSES:
            self._done[run_id] = (state, record)
        else:
            self._done.pop(run_id, None)

    def forget(self, run_id: str) -> None:
        """Drop what is known of a run (its folder was just written, moved or cleared)."""
        self._done.pop(run_id, None)


def iter_run_dirs(results_dir: Path | str, study: str | None = None) -> Iterator[Path]:
    """Run folders (holding run.json or checksums) under ``results_dir``, or only ``study``'s, sorted by name."""
    root = Path(results_dir)
    if not root.is_dir():
        return
    studies = (
        [root / study] if study else sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    )
    for folder in studies:
        if not folder.is_dir():
            continue
        for run_dir in sorted(folder.iterdir()):
            if (
                run_dir.is_dir()
                and not run_dir.name.startswith(".")
                and ((run_dir / RUN_JSON).exists() or (run_dir / CHECKSUMS).exists())
            ):
                yield run_dir


def find_run(spec: str, results_dir: Path | str) -> Path:
    """A run folder from a path or a run id (searched in every study under ``results_dir``)."""
    path = Path(spec)
    if path.is_dir():
        return path
    if path.name == RUN_JSON and path.is_file():
        return path.parent
    dirs = list(iter_run_dirs(results_folder(results_dir))) if spec else []
    matches = [d for d in dirs if d.name == spec]  # an exact id wins over the repeats (<id>-r2) it prefixes
    matches = matches or [d for d in dirs if d.name.startswith(spec)]
    if not matches:
        raise HarnessError(f"no run {spec!r}: not a folder and no run id under {results_dir}")
    if len(matches) > 1:
        raise HarnessError(f"run id {spec!r} is ambiguous: {', '.join(str(m) for m in matches[:5])}; give a path")
    return matches[0]


# --- the collected table --------------------------------------------------------------------------
ENERGY_SPLIT_COLUMNS = (
    "static_power_watts",
    "static_energy_fraction",
    "static_energy_per_token_joules",
    "dynamic_energy_per_token_joules",
    "static_energy_per_output_joules",
    "dynamic_energy_per_output_joules",
    "prefill_energy_per_prompt_token_joules",
    "prefill_energy_per_prompt_token_ci_low_joules",
    "prefill_energy_per_prompt_token_ci_high_joules",
    "decode_energy_per_output_token_joules",
    "decode_energy_per_output_token_ci_low_joules",
    "decode_energy_per_output_token_ci_high_joules",
    "prefill_energy_fraction",
    "decode_energy_fraction",
    "unexplained_energy_fraction",
    "request_static_energy_fraction_median",
)
METRIC_COLUMNS = (
    "energy_per_token_joules",
    "energy_per_request_joules",
    "energy_per_image_joules",
    "energy_per_video_joules",
    "energy_per_output_joules",
    "avg_power_watts",
    "median_itl_ms",
    "p90_itl_ms",
    "p95_itl_ms",
    "p99_itl_ms",
    "avg_batch_size",
    "batch_saturation",
    "avg_output_len",
    "output_throughput_tokens_per_sec",
    "batch_latency_s",
    "throughput_outputs_per_sec",
    "steady_duration_s",
    "steady_output_tokens",
    "gpu_energy_joules",
    "cpu_energy_joules",
    "dram_energy_joules",
    "telemetry_coverage_fraction",
    "avg_kv_cache_usage_fraction",
    "avg_gpu_utilization_percent",
    "max_temperature_celsius",
    "idle_power_watts",
    # the whole node where RAPL can be read: CPU packages and DRAM beside the GPUs (harness.measuring.node)
    "avg_cpu_power_watts",
    "avg_dram_power_watts",
    "node_energy_joules",
    "node_energy_per_token_joules",
    "node_energy_per_output_joules",
    "gpu_share_of_node_fraction",
    # the serving process tree's CPU time in the steady window (vLLM runs; harness.orchestration.metrics)
    "server_cpu_time_s",
    "server_cpu_cores",
    "cpu_time_per_output_token_ms",
    "cpu_time_per_request_s",
    "input_wait_fraction",
    # TTFT summaries; bootstrap intervals, window sensitivity and error budget (harness.measuring.fidelity)
    "mean_ttft_ms",
    "median_ttft_ms",
    "p90_ttft_ms",
    "p99_ttft_ms",
    "energy_per_token_ci_low_joules",
    "energy_per_token_ci_high_joules",
    "output_throughput_ci_low_tokens_per_sec",
    "output_throughput_ci_high_tokens_per_sec",
    "energy_per_output_ci_low_joules",
    "energy_per_output_ci_high_joules",
    "batch_latency_ci_low_s",
    "batch_latency_ci_high_s",
    "energy_per_token_whole_run_joules",
    "energy_per_token_trimmed_joules",
    "output_throughput_whole_run_tokens_per_sec",
    "output_throughput_trimmed_tokens_per_sec",
    "error_counter_update_fraction",
    "error_telemetry_coverage_fraction",
    "error_instant_vs_averaged_power_fraction",
    "error_steady_vs_whole_run_fraction",
    "error_bootstrap_fraction",
    # runs with latency targets (harness.measuring.goodput)
    "num_good_requests",
    "slo_attainment_fraction",
    "goodput_requests_per_sec",
    "energy_per_good_request_joules",
    # static against dynamic, prefill against decode (harness.analysis.energy_split, run.json's "energy_split")
    *ENERGY_SPLIT_COLUMNS,
)
# Repeat k >= 2 of a configuration is stored as <run-id>-r<k> (harness.config).


def _row(run_dir: Path) -> dict:
    problems = verify(run_dir)
    record = read_record(run_dir) or {}
    cfg = record.get("config") or {}
    env = record.get("environment") or {}
    metrics = record.get("metrics") or {}
    status = record.get("status", "corrupt")
    if problems and status != "incomplete":
        status = "corrupt"
    if status != "ok":  # only an intact, finished run contributes figures
        metrics = {}
    task = cfg.get("task")
    num_gpus = cfg.get("num_gpus")
    gpu_model = env.get("gpu_model") or ("CPU" if env else None)
    llm = cfg.get("max_num_seqs") is not None
    row = {
        "study": record.get("study", run_dir.parent.name),
        "run_id": record.get("run_id", run_dir.name),
        "run_dir": str(run_dir),
        "status": status,
        "cause": record.get("cause"),
        "is_stable": bool(record.get("is_stable")) if status == "ok" else False,
        "unstable_reason": record.get("unstable_reason") if status == "ok" else (record.get("cause") or status),
        "problems": "; ".join(problems) if status == "corrupt" else "",
        "task": task,
        "family": cfg.get("family"),
        "backend": cfg.get("backend"),
        "model_id": cfg.get("model"),
        "base_model_id": cfg.get("model"),
        "num_gpus": num_gpus,
        "tensor_parallel": cfg.get("tensor_parallel"),
        "expert_parallel": cfg.get("expert_parallel"),
        "weight_precision": cfg.get("precision"),
        "max_num_seqs": cfg.get("max_num_seqs"),
        "max_num_batched_tokens": cfg.get("max_num_batched_tokens"),
        "batch_size": cfg.get("max_num_seqs") if llm else cfg.get("batch_size"),
        "inference_steps": cfg.get("inference_steps"),
        "height_pixels": cfg.get("height"),
        "width_pixels": cfg.get("width"),
        "num_frames": cfg.get("num_frames"),
        "num_requests": cfg.get("num_requests"),
        "num_iterations": cfg.get("num_iterations"),
        "seed": cfg.get("seed"),
        "gpu_model": gpu_model,
        "gpu": f"{num_gpus} x {gpu_model}" if gpu_model else None,
        "output_unit": OUTPUT_UNIT.get(task, "response") if task else None,
        "energy_source": metrics.get("energy_source"),
        "phase_split_reason": metrics.get("phase_split_reason"),
        "source": "own",
        "is_reference": False,
    }
    row["base_run_id"], row["repeat"] = split_run_id(row["run_id"])
    validation = record.get("validation") or {} if status == "ok" else {}
    row["validation_passed"] = validation.get("passed") if validation else None
    row["validation_flags"] = ";".join((validation.get("errors") or []) + (validation.get("warnings") or []))
    for column in METRIC_COLUMNS:
        row[column] = metrics.get(column)
    if row["energy_per_request_joules"] is None and cfg.get("task") in LLM_TASKS:
        # a language-model run's output is a response: its energy per output under the reference's name
        row["energy_per_request_joules"] = metrics.get("energy_per_output_joules")
    row["node_energy_note"] = metrics.get("node_energy_note")  # where CPU and DRAM energy came from, or why null
    for knob in GPU_SETTING_KNOBS:  # the power cap and locked clock the run asked for (null: the host's)
        row[knob] = cfg.get(knob)
    return row


def collect(results_dir: Path | str, study: str | None = None):
    """One tidy row per run folder under ``results_dir`` (every status; damaged runs have status "corrupt")."""
    import pandas as pd

    rows = [_row(d) for d in iter_run_dirs(results_dir, study)]
    frame = pd.DataFrame(rows, columns=_columns())
    for column in (*METRIC_COLUMNS, *GPU_SETTING_KNOBS):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame


def _columns() -> list[str]:
    return [
        "study",
        "run_id",
        "run_dir",
        "status",
        "cause",
        "is_stable",
        "unstable_reason",
        "problems",
        "task",
        "family",
        "backend",
        "model_id",
        "base_model_id",
        "num_gpus",
        "tensor_parallel",
        "expert_parallel",
        "weight_precision",
        "max_num_seqs",
        "max_num_batched_tokens",
        "batch_size",
        "inference_steps",
        "height_pixels",
        "width_pixels",
        "num_frames",
        "num_requests",
        "num_iterations",
        "seed",
        "gpu_model",
        "gpu",
        "output_unit",
        "energy_source",
        "phase_split_reason",
        "source",
        "is_reference",
        "base_run_id",
        "repeat",
        "validation_passed",
        "validation_flags",
        *METRIC_COLUMNS,
        "node_energy_note",
        *GPU_SETTING_KNOBS,
    ]
