"""Diffusion across devices on this CPU host: two gloo worker processes under diffusers' Ulysses context
parallelism give the one-process output (float tolerance), the run's windows and records are a diffusion run's,
and the workers are gone (stopped through their own process group) once the backend stops."""

from __future__ import annotations

import os

import pytest

from harness.config import configuration_from_dict
from support import RecordingMeter


def _cfg(**over):
    base = dict(
        study="t",
        task="text-to-image",
        family="text-to-image",
        backend="diffusers",
        model="tiny-flux",
        num_gpus=1,
        tensor_parallel=1,
        expert_parallel=1,
        precision="bfloat16",
        max_num_seqs=None,
        max_num_batched_tokens=None,
        batch_size=1,
        inference_steps=2,
        height=64,
        width=64,
        num_frames=1,
        num_requests=None,
        num_iterations=2,
        seed=0,
        length_source=None,
        max_output_tokens=None,
        options={"device": "cpu"},
    )
    return configuration_from_dict(base | over)


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "harness-cache"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow  # two pipeline builds in two processes plus the one-process run: about 2.5 min on 2 loaded cores
def test_two_process_ulysses_matches_the_one_process_run(tmp_path):
    import torch

    from harness.workloads.diffusers_backend import DiffusersBackend

    one = DiffusersBackend()
    cfg1 = _cfg()
    try:
        one.start(cfg1, tmp_path / "one")
        one.run(cfg1, RecordingMeter())
        expected = [one._call(cfg1, 2, 1 + i) for i in range(2)]  # the seeds run() gives its iterations
    finally:
        one.stop()

    two = DiffusersBackend()
    two.outputs_dir = tmp_path / "outputs"
    cfg2 = _cfg(num_gpus=2, ulysses_degree=2)
    meter = RecordingMeter()
    try:
        two.start(cfg2, tmp_path / "two")
        pids = [p.pid for p in two.group.procs]
        pgid = two.group.pgid
        assert pgid == pids[0] and all(os.getpgid(pid) == pgid for pid in pids) and pgid != os.getpgid(0)
        result = two.run(cfg2, meter)
    finally:
        two.stop()
    assert not any(_alive(pid) for pid in pids)  # none left
    assert set(result.windows) == {"run", "iter-0", "iter-1"}
    assert [r.index for r in result.iterations] == [0, 1] and all(r.outputs == 1 for r in result.iterations)
    assert all(r.end_time_s > r.start_time_s for r in result.iterations)
    assert result.info["context_parallel"]["ulysses_degree"] == 2
    assert result.info["context_parallel"]["process_group_backend"] == "gloo"
    for i in range(2):
        got = torch.load(tmp_path / "outputs" / f"iter-{i}.pt")
        assert got.shape == expected[i].shape
        assert torch.allclose(got, expected[i].cpu(), atol=1e-5), (got - expected[i]).abs().max()
