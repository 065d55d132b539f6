"""No orphan servers: a SIGKILLed sweep leaves no server process (the reaper stops the group), and a server
that escaped anyway is found by its token and stopped at the next start. Real subprocesses, fake vLLM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import fake_vllm
from harness.workloads import servers

ROOT = Path(__file__).resolve().parent.parent


def _alive(pid) -> bool:
    return pid is not None and fake_vllm.alive(pid)


def _wait_until(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_a_sigkilled_sweep_leaves_no_server(tmp_path, no_nvml, vllm_env, monkeypatch):
    import httpx

    pids = fake_vllm.use(monkeypatch, tmp_path, {"token_s": 0.05, "engine_child": True})
    cfg = tmp_path / "k.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "study": "k",
                "settings": {"idle_power_s": 0},
                "runs": [
                    {
                        "task": "lm-arena-chat",
                        "backend": "vllm",
                        "models": ["tiny-llama"],
                        "num_requests": 20,
                        "seed": 3,
                        "max_output_tokens": 24,
                        "grid": {"max_num_seqs": [2]},
                    }
                ],
            }
        )
    )
    env = dict(os.environ, PYTHONPATH=f"{tmp_path / 'fake-vllm'}{os.pathsep}{ROOT}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "measure", str(cfg), "--results", str(tmp_path / "results"), "--no-progress"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        running = 0.0
        while running < 1:  # until the server is serving requests
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()
            time.sleep(0.05)
            found = fake_vllm.servers(pids)
            if found:
                try:
                    text = httpx.get(f"http://127.0.0.1:{found[0]['port']}/metrics", timeout=1).text
                except httpx.HTTPError:
                    continue
                running = float(text.split("vllm:num_requests_running")[1].split()[1])
        (server,) = fake_vllm.servers(pids)
        assert _alive(server["pid"]) and _alive(server["engine_pid"])
        reaper = server["ppid"]
        assert reaper != proc.pid and _alive(reaper)  # the server runs under the reaper, not the harness
        proc.kill()  # SIGKILL: no handler, no atexit, no finally in the harness
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    gone = _wait_until(lambda: not any(_alive(p) for p in (server["pid"], server["engine_pid"], reaper)), 30)
    assert gone, f"survivors: {[p for p in (server['pid'], server['engine_pid'], reaper) if _alive(p)]}"


def _tagged_sleeper(token: str) -> subprocess.Popen:
    env = dict(os.environ, **{servers.TOKEN_ENV: token})
    return subprocess.Popen(
        [sys.executable, "-c", "import time\nwhile True: time.sleep(1)"], env=env, start_new_session=True
    )


def test_a_server_left_by_an_earlier_sweep_is_stopped_at_the_next_start(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    dead_owner = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_owner.wait()
    escaped, live = _tagged_sleeper("escaped-token"), _tagged_sleeper("live-token")
    try:
        folder = servers.records_dir()
        folder.mkdir(parents=True)
        (folder / "escaped-token.json").write_text(
            json.dumps(
                {"token": "escaped-token", "pid": escaped.pid, "owner_pid": dead_owner.pid, "owner_start_ticks": 1}
            )
        )
        # a sweep that is still running (this process) keeps its server
        rec = servers.write_record("live-token", live.pid, ["vllm"])
        assert _wait_until(lambda: servers.tagged_processes("escaped-token") == [escaped.pid], 10)
        lines = servers.stop_leftovers(grace_s=5)
        assert len(lines) == 1 and str(escaped.pid) in lines[0] and "earlier sweep" in lines[0]
        assert escaped.wait(timeout=10) == -signal.SIGTERM
        assert live.poll() is None and rec.exists()
        assert not (folder / "escaped-token.json").exists()
        servers.remove_record(rec)
        assert servers.stop_leftovers() == []
    finally:
        for p in (escaped, live):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_the_reaper_passes_the_servers_exit_through_and_stops_its_children(tmp_path):
    script = tmp_path / "server.py"
    marker = tmp_path / "child.pid"
    script.write_text(
        "import os, sys, time\n"
        f"pid = os.fork()\n"
        "if pid == 0:\n    time.sleep(600)\n    os._exit(0)\n"
        f"open({str(marker)!r}, 'w').write(str(pid))\n"
        "time.sleep(0.5)\nsys.exit(3)\n"
    )
    proc = subprocess.Popen(servers.guarded([sys.executable, str(script)], grace_s=2), start_new_session=True)
    assert proc.wait(timeout=30) == 3
    child = int(marker.read_text())
    assert _wait_until(lambda: not _alive(child), 10)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_server_reads_as_killed_through_the_reaper(tmp_path, sig):
    script = tmp_path / "server.py"
    pidfile = tmp_path / "server.pid"
    script.write_text(f"import os, time\nopen({str(pidfile)!r}, 'w').write(str(os.getpid()))\ntime.sleep(600)\n")
    proc = subprocess.Popen(servers.guarded([sys.executable, str(script)], grace_s=2), start_new_session=True)
    try:
        assert _wait_until(lambda: pidfile.exists() and pidfile.read_text(), 30)
        os.kill(int(pidfile.read_text()), sig)
        assert proc.wait(timeout=30) == -sig
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
