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
half of one. :func:`verify` reports missing, truncated, edited or unlisted files.

    from harness.measuring import store
    store.write_run(run_dir, record, {"timeline.parquet": frame}, server_log=path)
    store.verify(run_dir)            # [] when intact, else one line per problem
    store.collect("results")         # one tidy row per run, reference column names

CLI: ``python -m harness list`` and ``python -m harness show RUN``.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import tempfile
from pathlib import Path

from harness.config import split_run_id
from harness.errors import HarnessError
from harness.measuring import paths
from harness.vocabulary.tasks import OUTPUT_UNIT

RUN_JSON = "run.json"
CHECKSUMS = "checksums.sha256"
STATUSES = ("ok", "failed", "incomplete", "skipped")
DONE_STATUSES = ("ok", "failed", "skipped")  # a result; "incomplete" and damaged runs are measured again
SCHEMA_VERSION = 1


# --- atomic files ---------------------------------------------------------------------------------
def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def atomic_write_json(path: Path, payload) -> None:
    text = json.dumps(payload, indent=2, sort_keys=False, default=_json_default, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode())


def atomic_write_parquet(path: Path, frame) -> None:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    atomic_write_bytes(path, buffer.getvalue())


def _json_default(value):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in JSON")


def clean_json(value):
    """NaN and infinities to None (JSON has no NaN), recursively; numpy scalars to Python."""
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


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
    its study's ``.replaced`` folder must resolve inside ``results_dir`` (:func:`harness.measuring.paths.prove_run_folder`)."""
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


def iter_run_dirs(results_dir: Path | str, study: str | None = None):
    root = Path(results_dir)
    if not root.is_dir():
        return
    studies = [root / study] if study else sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for folder in studies:
        if not folder.is_dir():
            continue
        for run_dir in sorted(folder.iterdir()):
            if run_dir.is_dir() and not run_dir.name.startswith(".") and (
                    (run_dir / RUN_JSON).exists() or (run_dir / CHECKSUMS).exists()):
                yield run_dir


# --- the collected table --------------------------------------------------------------------------
METRIC_COLUMNS = (
    "energy_per_token_joules", "energy_per_request_joules", "energy_per_image_joules", "energy_per_video_joules",
    "energy_per_output_joules", "avg_power_watts", "median_itl_ms", "p90_itl_ms", "p95_itl_ms", "p99_itl_ms",
    "avg_batch_size", "batch_saturation", "avg_output_len", "output_throughput_tokens_per_sec", "batch_latency_s",
    "throughput_outputs_per_sec", "steady_duration_s", "steady_output_tokens", "gpu_energy_joules",
    "cpu_energy_joules", "dram_energy_joules", "telemetry_coverage_fraction", "avg_kv_cache_usage_fraction",
    "avg_gpu_utilization_percent", "max_temperature_celsius", "idle_power_watts",
    # TTFT summaries; bootstrap intervals, window sensitivity and error budget (harness.measuring.fidelity)
    "mean_ttft_ms", "median_ttft_ms", "p90_ttft_ms", "p99_ttft_ms",
    "energy_per_token_ci_low_joules", "energy_per_token_ci_high_joules", "output_throughput_ci_low_tokens_per_sec",
    "output_throughput_ci_high_tokens_per_sec", "energy_per_output_ci_low_joules", "energy_per_output_ci_high_joules",
    "batch_latency_ci_low_s", "batch_latency_ci_high_s", "energy_per_token_whole_run_joules",
    "energy_per_token_trimmed_joules", "output_throughput_whole_run_tokens_per_sec",
    "output_throughput_trimmed_tokens_per_sec", "error_counter_update_fraction", "error_telemetry_coverage_fraction",
    "error_instant_vs_averaged_power_fraction", "error_steady_vs_whole_run_fraction", "error_bootstrap_fraction",
    # runs with latency targets (harness.measuring.goodput)
    "num_good_requests", "slo_attainment_fraction", "goodput_requests_per_sec", "energy_per_good_request_joules",
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
        "study": record.get("study", run_dir.parent.name), "run_id": record.get("run_id", run_dir.name),
        "run_dir": str(run_dir), "status": status, "cause": record.get("cause"),
        "is_stable": bool(record.get("is_stable")) if status == "ok" else False,
        "unstable_reason": record.get("unstable_reason") if status == "ok" else (record.get("cause") or status),
        "problems": "; ".join(problems) if status == "corrupt" else "",
        "task": task, "family": cfg.get("family"), "backend": cfg.get("backend"),
        "model_id": cfg.get("model"), "base_model_id": cfg.get("model"),
        "num_gpus": num_gpus, "tensor_parallel": cfg.get("tensor_parallel"), "expert_parallel": cfg.get("expert_parallel"),
        "weight_precision": cfg.get("precision"), "max_num_seqs": cfg.get("max_num_seqs"),
        "max_num_batched_tokens": cfg.get("max_num_batched_tokens"),
        "batch_size": cfg.get("max_num_seqs") if llm else cfg.get("batch_size"),
        "inference_steps": cfg.get("inference_steps"), "height_pixels": cfg.get("height"),
        "width_pixels": cfg.get("width"), "num_frames": cfg.get("num_frames"),
        "num_requests": cfg.get("num_requests"), "num_iterations": cfg.get("num_iterations"), "seed": cfg.get("seed"),
        "gpu_model": gpu_model, "gpu": f"{num_gpus} x {gpu_model}" if gpu_model else None,
        "output_unit": OUTPUT_UNIT.get(task, "response") if task else None,
        "energy_source": metrics.get("energy_source"),
        "source": "own", "is_reference": False,
    }
    row["base_run_id"], row["repeat"] = split_run_id(row["run_id"])
    validation = record.get("validation") or {} if status == "ok" else {}
    row["validation_passed"] = validation.get("passed") if validation else None
    row["validation_flags"] = ";".join((validation.get("errors") or []) + (validation.get("warnings") or []))
    for column in METRIC_COLUMNS:
        row[column] = metrics.get(column)
    return row


def collect(results_dir: Path | str, study: str | None = None):
    """One tidy row per run folder under ``results_dir`` (every status; damaged runs have status "corrupt")."""
    import pandas as pd

    rows = [_row(d) for d in iter_run_dirs(results_dir, study)]
    frame = pd.DataFrame(rows, columns=_columns())
    for column in METRIC_COLUMNS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame


def _columns() -> list[str]:
    return ["study", "run_id", "run_dir", "status", "cause", "is_stable", "unstable_reason", "problems", "task",
            "family", "backend", "model_id", "base_model_id", "num_gpus", "tensor_parallel", "expert_parallel",
            "weight_precision", "max_num_seqs", "max_num_batched_tokens", "batch_size", "inference_steps",
            "height_pixels", "width_pixels", "num_frames", "num_requests", "num_iterations", "seed", "gpu_model",
            "gpu", "output_unit", "energy_source", "source", "is_reference", "base_run_id", "repeat",
            "validation_passed", "validation_flags", *METRIC_COLUMNS]


# --- CLI ------------------------------------------------------------------------------------------
def _fmt(value, spec: str = ".3g") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def _cmd_list(args) -> int:
    frame = collect(results_folder(args.results), args.study)
    if args.flag:
        wanted = set(args.flag)
        unknown = wanted - set(_validator_checks()) - {"any"}
        if unknown:
            raise HarnessError(f"unknown flag {sorted(unknown)[0]!r} (known: any, {', '.join(_validator_checks())})")
        flags = frame["validation_flags"].fillna("").str.split(";").apply(lambda xs: {x for x in xs if x})
        keep = flags.apply(lambda got: bool(got) if "any" in wanted else bool(got & wanted))
        frame = frame[keep]
        if frame.empty:
            print(f"no runs flagged {', '.join(sorted(wanted))} under {args.results}")
            return 0
    if frame.empty:
        print(f"no runs under {args.results}" + (f"/{args.study}" if args.study else ""))
        return 0
    width = max([12, *(len(str(r)) for r in frame["run_id"])])  # repeats (<id>-r<k>) are longer
    header = f"{'study':16s} {'run id':{width}s} {'status':10s} {'stable':6s} {'model':14s} {'batch':>5s} " \
             f"{'J/output':>9s} {'J/token':>9s} {'tok/s':>8s}  note"
    print(header)
    for r in frame.itertuples():
        stable = "yes" if r.is_stable else ("no" if r.status == "ok" else "-")
        if r.status == "corrupt":
            note = f"CORRUPT: {r.problems}"
        elif r.status == "ok":
            note = "" if r.is_stable else (r.unstable_reason or "")
            if r.validation_flags:
                failed = "FAILS validation" if r.validation_passed is False else "flags"
                note = (note + "; " if note else "") + f"{failed}: {r.validation_flags.replace(';', ', ')}"
        else:
            note = r.cause or ""
        batch = r.batch_size if r.batch_size == r.batch_size and r.batch_size is not None else None
        print(f"{str(r.study)[:16]:16s} {str(r.run_id):{width}s} {r.status:10s} {stable:6s} {str(r.model_id)[:14]:14s} "
              f"{_fmt(batch, 'g'):>5s} {_fmt(r.energy_per_output_joules):>9s} {_fmt(r.energy_per_token_joules):>9s} "
              f"{_fmt(r.output_throughput_tokens_per_sec if r.output_unit == 'response' else r.throughput_outputs_per_sec):>8s}  {note}")
    counts = frame["status"].value_counts()
    print(", ".join(f"{n} {s}" for s, n in counts.items()))
    corrupt = int(counts.get("corrupt", 0))
    if corrupt:
        print(f"warning: {corrupt} run folder(s) fail their checksums; they are left out of findings", flush=True)
        return 1
    return 0


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


def _cmd_show(args) -> int:
    run_dir = find_run(args.run, args.results)
    record = read_record(run_dir)
    problems = verify(run_dir)
    if record is None:
        raise HarnessError(f"{run_dir}: run.json is missing or unreadable ({'; '.join(problems) or 'no file'})")
    if args.json:
        print(json.dumps(record, indent=2))
        return 1 if problems and record.get("status") != "incomplete" else 0
    cfg, metrics = record.get("config") or {}, record.get("metrics") or {}
    env = record.get("environment") or {}
    print(f"run        {run_dir}")
    print(f"status     {record.get('status')}" + (f" (cause: {record.get('cause')})" if record.get("cause") else ""))
    if record.get("message"):
        print(f"message    {record['message']}")
    print(f"stable     {record.get('is_stable')}" + (f" -- {record['unstable_reason']}" if record.get("unstable_reason") else ""))
    print(f"integrity  {'ok' if not problems else 'CORRUPT: ' + '; '.join(problems)}")
    print(f"host       {env.get('host')}  gpu: {env.get('gpu_count')} x {env.get('gpu_model') or 'none'}  "
          f"git: {str((env.get('git') or {}).get('commit'))[:10]}")
    print(f"timing     {record.get('started_at')} .. {record.get('finished_at')}  wall {_fmt(record.get('wall_time_s'), '.1f')} s")
    print("config     " + ", ".join(f"{k}={v}" for k, v in cfg.items() if v is not None and v != {}))
    shown = [(k, v) for k, v in metrics.items() if v is not None]
    if shown:
        print("metrics")
        for key, value in shown:
            spec = ".3f" if key.endswith("time_s") else ".6g"
            print(f"  {key:34s} {_fmt(value, spec) if isinstance(value, float) else value}")
    _show_fidelity(run_dir, record)
    if record.get("log_tail"):
        print("log tail")
        for line in str(record["log_tail"]).splitlines()[-20:]:
            print(f"  {line}")
    return 1 if problems and record.get("status") != "incomplete" else 0


def _validator_checks() -> tuple[str, ...]:
    from harness.measuring.validator import CHECKS

    return CHECKS


def _interval(ci, spec=".4g") -> str:
    return f"[{_fmt(ci[0], spec)}, {_fmt(ci[1], spec)}]" if ci else "-"


def _show_fidelity(run_dir: Path, record: dict) -> None:
    """Validation flags, intervals, window sensitivity, error budget and the repeats of this configuration."""
    validation = record.get("validation")
    if validation:
        verdict = "passed" if validation.get("passed") else "FAILED (" + ", ".join(validation.get("errors")) + ")"
        if validation.get("warnings"):
            verdict += "; warnings: " + ", ".join(validation["warnings"])
        print(f"validation {verdict}")
        for flag in validation.get("checks") or []:
            print(f"  {flag['status']:4s} {flag['severity']:7s} {flag['check']:18s} {flag['reason']}")
    fidelity = record.get("fidelity") or {}
    metrics = record.get("metrics") or {}
    iv = fidelity.get("intervals") or {}
    if iv:
        print(f"intervals  {iv.get('method')}, {iv.get('units')} units" + (f" ({iv['note']})" if iv.get("note") else ""))
        for key in ("energy_per_token_joules", "output_throughput_tokens_per_sec", "energy_per_output_joules",
                    "batch_latency_s"):
            if key in iv:
                print(f"  {key:34s} {_fmt(metrics.get(key), '.4g'):>10s}  {CONFIDENCE_LABEL} {_interval(iv.get(key))}")
    ws = fidelity.get("window_sensitivity") or {}
    if ws:
        print("windows    " + f"{'window':10s} {'duration s':>10s} {'tokens':>7s} {'J/token':>10s} {'tok/s':>9s}  energy source")
        for name in ("steady", "whole_run", "trimmed"):
            w = ws.get(name)
            if w:
                print(f"           {name:10s} {_fmt(w.get('duration_s'), '.3f'):>10s} {w.get('output_tokens'):>7d} "
                      f"{_fmt(w.get('energy_per_token_joules'), '.4g'):>10s} "
                      f"{_fmt(w.get('output_throughput_tokens_per_sec'), '.4g'):>9s}  {w.get('energy_source')}")
    budget = (fidelity.get("error_budget") or {}).get("items") or {}
    if budget:
        largest = (fidelity.get("error_budget") or {}).get("largest")
        print("error budget (relative)" + (f"; largest: {largest}" if largest else ""))
        for name, item in budget.items():
            rel = item.get("relative")
            print(f"  {name:26s} {(f'{100 * rel:.2f}%' if rel is not None else '-'):>8s}  {item.get('note')}")
    _show_repeats(run_dir, record)


CONFIDENCE_LABEL = "95% CI"


def _show_repeats(run_dir: Path, record: dict) -> None:
    from harness.measuring import repeats

    base, k = split_run_id(record.get("run_id") or run_dir.name)
    siblings = [d for d in sorted(run_dir.parent.iterdir()) if d.is_dir() and split_run_id(d.name)[0] == base]
    if len(siblings) < 2:
        return
    rows = []
    for d in siblings:
        state, rec = result_state(d)
        rows.append((d.name, state, (rec or {}).get("metrics") or {}))
    ok = [m for _, state, m in rows if state == "ok"]
    print(f"repeats    {len(siblings)} runs of this configuration ({len(ok)} ok; this is repeat {k}): "
          + ", ".join(f"{name} {state}" for name, state, _ in rows))
    for key in repeats.METRICS:
        values = [m.get(key) for m in ok if m.get(key) is not None]
        t = repeats.t_interval(values)
        if t:
            print(f"  {key:34s} mean {_fmt(t[0], '.4g'):>10s}  sd {_fmt(t[1], '.3g'):>9s}  "
                  f"{CONFIDENCE_LABEL} {_interval(t[2:])}  (n={len(values)}, Student's t)")


def register(sub) -> None:
    p = sub.add_parser("list", help="table of measured runs with status and key figures",
                       description="List run folders under the results directory with their status, stability "
                                   "and key figures. Folders whose files fail their checksums are flagged "
                                   "CORRUPT (exit code 1).")
    p.add_argument("--results", default="results", help="results directory (default: results)")
    p.add_argument("--study", help="only this study")
    p.add_argument("--flag", action="append", metavar="CHECK",
                   help="only runs that failed this reference-validator check (repeatable; 'any' for any flag), "
                        "e.g. steady-duration, temperature, output-length-cap")
    p.set_defaults(func=_cmd_list)
    p = sub.add_parser("show", help="print one run's summary",
                       description="Print a run's status, validity flags, integrity, config and summary metrics.")
    p.add_argument("run", metavar="RUN", help="a run id (or its prefix) or a run folder path")
    p.add_argument("--results", default="results", help="results directory searched for run ids (default: results)")
    p.add_argument("--json", action="store_true", help="print run.json as stored")
    p.set_defaults(func=_cmd_show)
