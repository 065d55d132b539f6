"""Run a study's sweep on a Slurm cluster: one ``sbatch --array`` job per GPU count.

``python -m harness submit CONFIG`` (:mod:`harness.cli.slurm`) writes a plain sbatch script whose array task
``i`` runs ``python -m harness measure CONFIG --index i --results DIR`` -- the very
command a local sweep runs for configuration ``i`` -- and submits it. Nothing but
the command line travels to the nodes: the config file path, the results folder
and an index (no pickled code). The shared results folder is the store; each
configuration writes its own run folder, so tasks never clash.

Kept with the sweep, under ``<results>/<study>/slurm/``:

* ``submit-<timestamp>[-<n>gpu].sbatch`` (``retry-...`` for ``--retry-failed``): the
  script of each submission, readable and resubmittable by hand (``sbatch FILE``);
* ``logs/<array job id>_<index>.out``: each task's stdout and stderr;
* ``submissions.jsonl``: one line per submitted array (job id, script, the
  indices and run ids it holds), which ``status`` uses to find each
  configuration's job and log.

Only configurations without a result, and not already queued, are submitted
(``--array=0,2,5``). A stored failed run counts as a result, as it does for
``measure``; ``--retry-failed`` submits exactly the failed configurations (stored
failures, and tasks that ended without a result) and runs them with
``measure --force``, which keeps the failed folder under ``<study>/.replaced/``.
Configurations are grouped by the GPUs they need (``num_gpus``;
none for the CPU-only ``cpu-trivial`` task) and each group becomes one array
with ``--gres=gpu:N``.

``python -m harness status CONFIG`` shows, per configuration: done, failed (with
the reason and the log), skipped, running or pending (from ``squeue``), or
not-submitted.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError

# Task states, in the order status lists their counts.
STATES = ("done", "failed", "skipped", "running", "pending", "not-submitted")
CPU_ONLY_FAMILIES = ("cpu-trivial",)  # measured on the CPU: no GPU is requested for them
SQUEUE_RUNNING = {"RUNNING", "COMPLETING", "CONFIGURING", "STAGE_OUT", "SIGNALING", "RESIZING"}
LEDGER = "submissions.jsonl"
SETUP_MARGIN_S = 15 * 60  # default time limit = the study's run timeout + this (model load, idle sampling)


class SlurmError(HarnessError):
    """sbatch or squeue failed, or is not installed."""


# -- planning ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ArrayPlan:
    """One ``sbatch --array`` job: configurations that need the same number of GPUs."""

    num_gpus: int  # GPUs per task; 0 for CPU-only configurations
    indices: tuple[int, ...]  # configuration indices = array task ids

    @property
    def array_spec(self) -> str:
        return compact_indices(self.indices)


@dataclass(frozen=True)
class SubmitOptions:
    partition: str | None = None
    time_limit: str | None = None  # Slurm's format (minutes, HH:MM:SS, D-HH:MM:SS); None: from the study
    cpus_per_task: int | None = None
    max_parallel: int | None = None  # --array=...%N
    sbatch_args: tuple[str, ...] = ()
    no_gpu: bool = False
    gpu_type: str | None = None  # --gres=gpu:<type>:N, e.g. h100 (the cluster's GRES type names)
    python: str = field(default_factory=lambda: sys.executable)
    workdir: Path = field(default_factory=Path.cwd)


def gpus_for(cfg) -> int:
    """GPUs one task of ``cfg`` asks the scheduler for."""
    return 0 if cfg.family in CPU_ONLY_FAMILIES else int(cfg.num_gpus)


def compact_indices(indices: Iterable[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` -> ``"0-2,5,7-8"`` (sbatch's --array syntax)."""
    values = sorted(set(indices))
    parts: list[str] = []
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        parts.append(str(values[i]) if i == j else f"{values[i]}-{values[j]}")
        i = j + 1
    return ",".join(parts)


def plan_arrays(study, wanted: Iterable[int], no_gpu: bool = False) -> list[ArrayPlan]:
    """Group the wanted configuration indices by GPU count, one array per count (ascending)."""
    groups: dict[int, list[int]] = {}
    for index in sorted(set(wanted)):
        cfg = study.configurations[index]
        groups.setdefault(0 if no_gpu else gpus_for(cfg), []).append(index)
    return [ArrayPlan(num_gpus=n, indices=tuple(ix)) for n, ix in sorted(groups.items())]


def default_time_limit(study) -> str:
    """The study's run timeout plus a margin for loading models, as Slurm ``D-HH:MM:SS``."""
    total = int(study.settings.run_timeout_s + study.settings.idle_power_s + SETUP_MARGIN_S)
    minutes = -(-total // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    return f"{days}-{hours:02d}:{mins:02d}:00"


def slurm_dir(results: Path, study) -> Path:
    return Path(results) / study.name / "slurm"


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def render_script(study, plan: ArrayPlan, results: Path, options: SubmitOptions, force: bool = False) -> str:
    """The sbatch script for one array: plain bash with ``#SBATCH`` lines and comments.

    ``force`` (retries of failed configurations) adds ``measure --force``: a stored failed result
    counts as a result, so only --force measures it again (the failed folder moves to
    ``<study>/.replaced/``).
    """
    results = Path(results).resolve()
    config = Path(study.path).resolve()
    logs = slurm_dir(results, study) / "logs"
    q = shlex.quote
    lines = [
        "#!/bin/bash",
        f"# Slurm job array for study {study.name!r} ({config}),",
        f"# written by `python -m harness submit` on {time.strftime('%Y-%m-%d %H:%M:%S %Z')}.",
        "#",
        "# Array task i measures configuration i of the config file, exactly as a local run would:",
        "#     python -m harness measure CONFIG --index i --results RESULTS",
        "# It writes <RESULTS>/<study>/<run id>/ and skips a configuration that already has a valid result.",
        "# Resubmit by hand with `sbatch THIS_FILE`, or narrow it with `sbatch --array=2,5 THIS_FILE`.",
        "#",
        f"# {len(plan.indices)} configuration(s), "
        + (f"{plan.num_gpus} GPU(s) each:" if plan.num_gpus else "CPU only:"),
        "#   index  run id        configuration",
    ]
    for index in plan.indices:
        cfg = study.configurations[index]
        lines.append(f"#   {index:>5}  {cfg.run_id}  {cfg.label()}")
    array = plan.array_spec + (f"%{options.max_parallel}" if options.max_parallel else "")
    directives = [
        f"--job-name={job_name(study)}",
        f"--array={array}",
        f"--output={logs}/%A_%a.out",
        "--ntasks=1",
        f"--time={options.time_limit or default_time_limit(study)}",
    ]
    if plan.num_gpus:
        gpu = f"gpu:{options.gpu_type}" if options.gpu_type else "gpu"
        directives.append(f"--gres={gpu}:{plan.num_gpus}")
    if options.cpus_per_task:
        directives.append(f"--cpus-per-task={options.cpus_per_task}")
    if options.partition:
        directives.append(f"--partition={options.partition}")
    directives.extend(options.sbatch_args)
    lines.append("#")
    lines.extend(f"#SBATCH {d}" for d in directives)
    digest = file_sha256(config)
    lines += [
        "",
        "set -euo pipefail",
        "",
        f"CONFIG={q(str(config))}",
        f"RESULTS={q(str(results))}",
        f"PYTHON={q(options.python)}",
        "",
        "# Array indices point into the config as it was at submission: refuse to run if it has changed.",
        f'if ! echo "{digest}  $CONFIG" | sha256sum --check --status; then',
        '    echo "error: $CONFIG changed since this array was submitted; submit it again" >&2',
        "    exit 3",
        "fi",
        "",
    ]
    reference = os.environ.get("HARNESS_REFERENCE_DIR")
    if reference:
        lines.append("# Published reference data (output-length distributions of the LLM tasks).")
        lines.append(f"export HARNESS_REFERENCE_DIR={q(reference)}")
    lines += [
        "export PYTHONUNBUFFERED=1",
        f"cd {q(str(Path(options.workdir).resolve()))}",
        "",
        (
            'echo "task $SLURM_ARRAY_TASK_ID of array job $SLURM_ARRAY_JOB_ID on ${SLURMD_NODENAME:-$(hostname)};'
            ' GPUs: ${CUDA_VISIBLE_DEVICES:-none}"'
        ),
    ]
    command = 'exec "$PYTHON" -m harness measure "$CONFIG" --index "$SLURM_ARRAY_TASK_ID" --results "$RESULTS"'
    if force:
        lines += [
            "# A retry of failed configurations: --force measures again although a failed result is stored",
            "# (the old folder moves to <study>/.replaced/). Resubmitting this file after the retries",
            "# succeeded would measure them once more; use `python -m harness submit --retry-failed` instead.",
        ]
        command += " --force"
    lines += [command + " --no-progress", ""]
    return "\n".join(lines)


def job_name(study) -> str:
    return f"harness-{study.name}"


# -- what is already known: the store, the ledger, squeue ----------------------------------------
@dataclass(frozen=True)
class TaskState:
    index: int
    run_id: str
    label: str
    state: str  # one of STATES
    job: str | None = None  # "<array job id>_<index>" of the latest submission, if any
    reason: str | None = None  # why it failed or was skipped, or squeue's pending reason
    log: Path | None = None
    stored: str | None = None  # the run folder's state in the store (ok, failed, skipped, incomplete, corrupt)


def read_ledger(results: Path, study) -> list[dict]:
    path = slurm_dir(results, study) / LEDGER
    if not path.exists():
        return []
    entries = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn line from an interrupted write: ignore it
    return entries


def _append_ledger(results: Path, study, entry: dict) -> None:
    path = slurm_dir(results, study) / LEDGER
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(entry, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, data)  # one write with O_APPEND: concurrent submitters do not interleave
    finally:
        os.close(fd)


def latest_submissions(results: Path, study) -> dict[str, tuple[str, Path]]:
    """run id -> (job "<array id>_<index>", its log path) of the last array that held it."""
    logs = slurm_dir(results, study) / "logs"
    out: dict[str, tuple[str, Path]] = {}
    for entry in read_ledger(results, study):
        job_id = str(entry["job_id"])
        for index, run_id in entry.get("run_ids", {}).items():
            out[run_id] = (f"{job_id}_{index}", logs / f"{job_id}_{index}.out")
    return out


def squeue_tasks(study) -> dict[str, tuple[str, str]]:
    """Queued tasks of this study's arrays: "<array id>_<index>" -> (squeue state, reason)."""
    if shutil.which("squeue") is None:
        raise SlurmError("squeue not found: is this a Slurm login node? (status without --no-queue needs it)")
    cmd = ["squeue", "--noheader", "--array", f"--name={job_name(study)}", "--format=%F|%K|%T|%r"]
    res = _run(cmd)
    out = {}
    for line in res.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 4:
            continue
        array_id, task_id, state, reason = parts
        out[f"{array_id}_{task_id}"] = (state, reason)
    return out


def stored_outcomes(results: Path, study) -> dict[str, tuple[str, str | None]]:
    """run id -> (store state, reason) for configurations whose run folder holds something.

    States are :func:`harness.measuring.store.result_state`'s: ok, failed, skipped, incomplete, corrupt.
    """
    from harness.measuring import store

    out: dict[str, tuple[str, str | None]] = {}
    for cfg in study.configurations:
        state, record = store.result_state(store.run_path(results, study.name, cfg.run_id))
        if state == "missing":
            continue
        record = record or {}
        reason: str | None
        if state == "corrupt":
            problems = store.verify(store.run_path(results, study.name, cfg.run_id))
            reason = "stored result is damaged: " + ("; ".join(problems) or "run.json unreadable")
        elif state == "incomplete":
            reason = "the run stopped before it finished (incomplete)"
        else:
            cause, message = record.get("cause"), record.get("message")
            reason = ": ".join(str(x) for x in (cause, message) if x) or None
        out[cfg.run_id] = (state, reason)
    return out


def task_states(study, results: Path, use_queue: bool = True) -> list[TaskState]:
    """Where every configuration of the study stands.

    done: a stored result with status ok (stable or not); skipped: stored as skipped (a smaller
    batch of its series ran out of memory or was unstable); running / pending: in ``squeue``;
    failed: stored as failed, or submitted and gone from the queue without a result (its log
    says why), or left incomplete or damaged; not-submitted: none of these.
    """
    results = Path(results)
    stored = stored_outcomes(results, study)
    submitted = latest_submissions(results, study)
    queue = squeue_tasks(study) if use_queue and submitted else {}
    states = []
    for index, cfg in enumerate(study.configurations):
        job, log = submitted.get(cfg.run_id, (None, None))
        outcome, why = stored.get(cfg.run_id, (None, None))
        queued = queue.get(job) if job else None
        if queued is not None:
            state = "running" if queued[0] in SQUEUE_RUNNING else "pending"
            reason = queued[1] if state == "pending" and queued[1] not in ("None", "") else None
        elif outcome == "ok":
            state, reason = "done", None
        elif outcome in ("failed", "skipped"):
            state, reason = outcome, why
        elif outcome in ("incomplete", "corrupt"):
            state, reason = "failed", why
        elif job is not None:
            state, reason = "failed", _reason_from_log(log)
        else:
            state, reason = "not-submitted", None
        states.append(
            TaskState(
                index=index,
                run_id=cfg.run_id,
                label=cfg.label(),
                state=state,
                job=job,
                reason=reason,
                log=log,
                stored=outcome,
            )
        )
    return states


def _reason_from_log(log: Path | None) -> str:
    """The last error line of a task log, for a task that ended without a stored result."""
    if log is None or not log.exists():
        return "the task ended without a result and left no log (cancelled before it started?)"
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    for line in reversed(lines):
        low = line.lower()
        if "error" in low or "cancelled" in low or "killed" in low or "time limit" in low:
            return f"no result stored; log says: {line[:200]}"
    tail = lines[-1][:200] if lines else "(empty)"
    return f"no result stored; last log line: {tail}"


# -- submitting ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Submission:
    plan: ArrayPlan
    script: Path | None  # None on a dry run
    text: str
    job_id: str | None  # None on a dry run


def select_for_submit(states: list[TaskState], retry_failed: bool = False) -> list[int]:
    """Indices to submit: without --retry-failed, those with no result that are not queued (a stored
    failed result counts as a result, as for ``measure``); with it, exactly the failed ones."""
    if retry_failed:
        return [t.index for t in states if t.state == "failed"]
    return [t.index for t in states if t.state in ("not-submitted", "failed") and t.stored != "failed"]


def submit(
    study,
    results: Path,
    options: SubmitOptions,
    retry_failed: bool = False,
    dry_run: bool = False,
    states: list[TaskState] | None = None,
) -> list[Submission]:
    """Write and submit one array per GPU count for the configurations that need a run."""
    results = Path(results).resolve()
    if states is None:
        states = task_states(study, results, use_queue=not dry_run)
    plans = plan_arrays(study, select_for_submit(states, retry_failed), no_gpu=options.no_gpu)
    out: list[Submission] = []
    if not plans:
        return out
    if not dry_run and shutil.which("sbatch") is None:
        raise SlurmError("sbatch not found: submit from a Slurm login node (or use --dry-run to see the script)")
    folder = slurm_dir(results, study)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for plan in plans:
        text = render_script(study, plan, results, options, force=retry_failed)
        if dry_run:
            out.append(Submission(plan=plan, script=None, text=text, job_id=None))
            continue
        (folder / "logs").mkdir(parents=True, exist_ok=True)
        kind = "retry" if retry_failed else "submit"
        suffix = f"-{plan.num_gpus}gpu" if len(plans) > 1 else ""
        script = _unique(folder / f"{kind}-{stamp}{suffix}.sbatch")
        script.write_text(text)
        res = _run(["sbatch", "--parsable", str(script)])
        job_id = res.stdout.strip().split(";")[0]
        if not job_id.isdigit():
            raise SlurmError(f"sbatch answered {res.stdout.strip()!r}, expected a job id (script kept: {script})")
        _append_ledger(
            results,
            study,
            {
                "job_id": job_id,
                "script": str(script),
                "submitted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "config": str(Path(study.path).resolve()),
                "config_sha256": file_sha256(study.path),
                "num_gpus": plan.num_gpus,
                "retry_failed": retry_failed,
                "run_ids": {str(i): study.configurations[i].run_id for i in plan.indices},
            },
        )
        out.append(Submission(plan=plan, script=script, text=text, job_id=job_id))
    return out


def _unique(path: Path) -> Path:
    candidate, n = path, 1
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        n += 1
    return candidate


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise SlurmError(f"{cmd[0]} not found: is Slurm installed here?") from None
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{cmd[0]} did not answer within 60 s (is slurmctld reachable?)") from None
    if res.returncode != 0:
        message = (res.stderr or res.stdout).strip().splitlines()
        raise SlurmError(f"{' '.join(cmd[:2])} failed: {message[-1] if message else f'exit {res.returncode}'}")
    return res
