"""Soak (issue 6): a sweep of 50 tiny CPU configurations with seeded random faults.

Ten series (one trivial block each, five batch sizes) take a random place in this plan:

* backend failures through the trivial backend's fault injection (``fail_cause``): two series run out
  of memory from a random batch size on, one has its "server" die from a random batch size on;
* per configuration, among the ones left: crashes of the backend, telemetry sampler errors, and
  SIGINT / SIGTERM at a random phase of the run (start, mid-run, stop, save), each followed by a
  resumed sweep.

At the end every configuration that was not faulted was measured to completion exactly once, every
faulted one is recorded with its cause, the larger batches after an out-of-memory are recorded as
skipped with the reason, and the store is intact. ``SOAK_SEED`` picks another plan.
"""

from __future__ import annotations

import collections
import io
import os
import random
import signal

import pytest
import yaml

from harness.cli import main
from harness.measuring import store, telemetry
from harness.orchestration import runner
from harness.orchestration.runner import Interrupted, measure_study
from harness.orchestration.study import load_study
from harness.workloads.trivial import TrivialBackend

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("SOAK_SEED", "6"))
BATCHES = [1, 2, 3, 4, 6]
SERIES = 10
PHASES = ("start", "run", "stop", "save")


def _plan(rng: random.Random):
    """(config blocks, block faults {series: (cause, from_batch)})."""
    faulty = rng.sample(range(SERIES), 3)
    block_faults = {
        faulty[0]: ("oom", rng.choice(BATCHES[1:-1])),
        faulty[1]: ("oom", rng.choice(BATCHES[1:-1])),
        faulty[2]: ("server-died", rng.choice(BATCHES[1:])),
    }
    blocks = []
    for series in range(SERIES):
        options = {"step_s": 0.001, "min_output_tokens": 3, "max_output_tokens": 5}
        if series in block_faults:
            cause, batch = block_faults[series]
            options |= {"fail_cause": cause, "fail_from_max_num_seqs": batch, "fail_after_requests": rng.randint(0, 3)}
        blocks.append(
            {
                "task": "cpu-trivial",
                "backend": "trivial",
                "models": ["cpu-spin"],
                "num_requests": 12,
                "seed": series,
                "options": options,
                "grid": {"max_num_seqs": BATCHES},
            }
        )
    return blocks, block_faults


def test_soak_fifty_configurations_with_random_faults(tmp_path, no_nvml, monkeypatch):
    rng = random.Random(SEED)
    blocks, block_faults = _plan(rng)
    path = tmp_path / "soak.yaml"
    path.write_text(yaml.safe_dump({"study": "soak", "settings": {"idle_power_s": 0}, "runs": blocks}, sort_keys=False))
    study = load_study(path)
    configs = study.configurations
    assert len(configs) == 50
    series_of = {c.run_id: c.seed for c in configs}

    # expected outcome of each configuration from the block faults
    expected: dict[str, tuple] = {}
    for c in configs:
        cause, batch = block_faults.get(c.seed, (None, None))
        if cause is None or c.max_num_seqs < batch:
            expected[c.run_id] = ("ok", None)
        elif cause == "oom" and c.max_num_seqs > batch:
            first = next(o for o in configs if o.seed == c.seed and o.max_num_seqs == batch)
            expected[c.run_id] = ("skipped", f"max_num_seqs={batch} ran out of memory (run {first.run_id})")
        else:
            expected[c.run_id] = ("failed", cause)
    # per-configuration faults among the configurations the backend faults leave alone
    eligible = [rid for rid, (status, _) in expected.items() if status == "ok"]
    chosen = rng.sample(eligible, 4 + 5 + 8)
    faults: dict[str, tuple] = {}
    for rid in chosen[:4]:
        faults[rid] = ("crash",)
    for rid in chosen[4:9]:
        faults[rid] = ("sampler",)
    phases, signums = list(PHASES) * 2, [signal.SIGINT, signal.SIGTERM] * 4  # every phase and signal, shuffled
    rng.shuffle(phases)
    rng.shuffle(signums)
    for rid, phase, signum in zip(chosen[9:], phases, signums, strict=False):
        faults[rid] = ("interrupt", phase, signum)
    for rid, fault in faults.items():
        if fault[0] == "crash":
            expected[rid] = ("failed", "crash: RuntimeError")

    starts, completed = collections.Counter(), collections.Counter()
    fired: list[str] = []
    current = {"run_id": None}

    def fire(run_id, phase):
        fault = faults.get(run_id)
        if fault and fault[0] == "interrupt" and fault[1] == phase and run_id not in fired:
            fired.append(run_id)
            signal.raise_signal(fault[2])

    start, run, stop = TrivialBackend.start, TrivialBackend.run, TrivialBackend.stop
    write_run, sample = store.write_run, telemetry._HostProbe.sample

    def start_(self, cfg, run_dir):
        starts[cfg.run_id] += 1
        current["run_id"] = self.run_id = cfg.run_id
        start(self, cfg, run_dir)
        fire(cfg.run_id, "start")

    def run_(self, cfg, meter):
        if faults.get(cfg.run_id) == ("crash",):
            raise RuntimeError(f"injected crash in {cfg.run_id}")
        begin = meter.begin

        def begin_(name):
            begin(name)
            if name == "steady":
                fire(cfg.run_id, "run")

        meter.begin = begin_
        result = run(self, cfg, meter)
        completed[cfg.run_id] += 1
        return result

    def stop_(self):
        fire(self.run_id, "stop")
        stop(self)

    def write_run_(run_dir, record, *args, **kwargs):
        if record["status"] != "incomplete":
            fire(record["run_id"], "save")
        return write_run(run_dir, record, *args, **kwargs)

    def sample_(self):
        if faults.get(current["run_id"]) == ("sampler",):
            raise OSError("injected sampler fault")
        return sample(self)

    monkeypatch.setattr(TrivialBackend, "start", start_)
    monkeypatch.setattr(TrivialBackend, "run", run_)
    monkeypatch.setattr(TrivialBackend, "stop", stop_)
    monkeypatch.setattr(store, "write_run", write_run_)
    monkeypatch.setattr(telemetry._HostProbe, "sample", sample_)

    results = tmp_path / "results"
    sweeps = 0
    interrupted_states = {}
    while True:
        sweeps += 1
        assert sweeps <= 20, "the sweep never finished"
        try:
            measure_study(study, results, progress=False, out=io.StringIO())
            break
        except Interrupted as exc:
            victim = fired[-1]
            assert exc.signum == faults[victim][2]  # noqa: PT017  # the sweep goes on after each interrupt
            interrupted_states[victim] = store.result_state(store.run_path(results, "soak", victim))
    interrupts = [rid for rid, f in faults.items() if f[0] == "interrupt"]
    assert sorted(fired) == sorted(interrupts) and sweeps == len(interrupts) + 1

    for rid in interrupts:  # the state each interrupt left behind, before the resume measured it
        _, phase, signum = faults[rid]
        state, record = interrupted_states[rid]
        if phase in ("start", "run"):
            assert (state, record["cause"]) == ("incomplete", f"interrupted by {signal.Signals(signum).name}")
        else:  # the load had finished: the outcome was saved before the sweep stopped
            assert state == "ok"

    problems = []
    for c in configs:
        rid = c.run_id
        run_dir = store.run_path(results, "soak", rid)
        state, record = store.result_state(run_dir)
        want_status, want_cause = expected[rid]
        fault = faults.get(rid, ("none",))
        label = f"{rid} series {series_of[rid]} max_num_seqs={c.max_num_seqs} fault={fault}"
        if (state, record and record.get("cause")) != (want_status, want_cause):
            problems.append(
                f"{label}: {state} / {record and record.get('cause')}, expected {want_status} / {want_cause}"
            )
            continue
        if store.verify(run_dir):
            problems.append(f"{label}: {store.verify(run_dir)}")
        if want_status == "skipped":
            if starts[rid]:
                problems.append(f"{label}: a skipped configuration was started")
            continue
        if want_status == "failed":
            tail = record.get("log_tail") or ""
            if not ("injected failure" in tail or "injected crash" in tail) or completed[rid]:
                problems.append(f"{label}: failure without its evidence ({tail[-80:]!r})")
            continue
        # ok: measured to completion exactly once over all sweeps
        if completed[rid] != 1:
            problems.append(f"{label}: completed {completed[rid]} times")
        restarted = fault[0] == "interrupt" and fault[1] in ("start", "run")
        if starts[rid] != (2 if restarted else 1):
            problems.append(f"{label}: started {starts[rid]} times")
        flagged = "telemetry-errors" in (record.get("failed_checks") or [])
        if flagged != (fault[0] == "sampler"):
            problems.append(f"{label}: telemetry-errors flag {flagged}")
        if fault[0] == "sampler" and "injected sampler fault" not in " ".join(record["telemetry"]["errors"]):
            problems.append(f"{label}: sampler error not kept")
    assert problems == [], "\n".join(problems)

    outcome = collections.Counter(status for status, _ in expected.values())
    assert outcome["skipped"] >= 1 and outcome["failed"] >= 5 and outcome["ok"] >= 30
    assert list(results.rglob("*.tmp")) == [] and not (results / "soak" / ".replaced").exists()
    table = store.collect(results)
    assert len(table) == 50 and dict(table["status"].value_counts()) == dict(outcome)
    assert table.loc[table["status"] != "ok", list(store.METRIC_COLUMNS)].isna().all().all()
    assert measure_study(study, results, progress=False, out=io.StringIO()) == {"already done": 50}
    assert main(["list", "--results", str(results)]) == 0
    assert runner.blocking_reason(configs[0], study, results) is None
