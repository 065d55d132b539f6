"""A stand-in for ``python -m vllm.entrypoints.openai.api_server``, for fault tests (test_faults, test_safety).

The vLLM backend launches ``<engine python> -m vllm.entrypoints.openai.api_server ...`` with the
parent's environment; :func:`use` makes the engine's interpreter this one (``HARNESS_ENGINE_PYTHON``). :func:`install` writes a tiny ``vllm`` package into a folder; putting that
folder first on the child's ``PYTHONPATH`` makes the backend start this fake instead of vLLM, so the
backend's real code (process group, health wait, /v1/models check, streaming load, /metrics scrape,
stop) runs against a real subprocess that can be told to fail:

``FAKE_VLLM_FAULTS`` (JSON) with keys
  ``never_healthy_seeds``   /health answers 503 for runs started with these ``--seed`` values;
  ``die_mid_run_seeds``     the process SIGKILLs itself after ``die_after_tokens`` streamed tokens;
                            with ``die_delay_s`` it first drops every connection and dies that much
                            later (a crashing engine whose API server exits a moment after);
  ``oom_from_max_num_seqs`` at startup, ``--max-num-seqs`` >= this prints a CUDA out-of-memory
                            error and exits 1 (as vLLM does when the KV cache does not fit);
  ``token_s``               seconds per streamed token (default 0.004);
  ``engine_child``          fork a child that just sleeps (vLLM's engine-core process), which outlives
                            the server unless something stops it;
  ``record_bodies``         append every POST's path and JSON body to ``bodies.jsonl`` in ``FAKE_VLLM_PIDS``
                            (the request shapes a test checks).

Every fake server writes its pid and bound address to ``FAKE_VLLM_PIDS`` (a folder) as
``<pid>.json``, so a test can check what it bound to and that nothing outlived its run.
"""  # noqa: E501

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

MARKER = "fake-vllm-server-for-tests"

SERVER = r'''
"""__MARKER__"""
import argparse, json, os, signal, socket, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ap = argparse.ArgumentParser()
ap.add_argument("--host", default="0.0.0.0")  # vLLM's own default: the harness must pass --host
ap.add_argument("--port", type=int, default=8000)
ap.add_argument("--served-model-name", default="model")
ap.add_argument("--max-num-seqs", type=int, default=256)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--trust-remote-code", action="store_true")
ap.add_argument("--api-key", default=None)  # as vLLM: every /v1 request needs "Authorization: Bearer <key>"
args, rest = ap.parse_known_args()
faults = json.loads(os.environ.get("FAKE_VLLM_FAULTS") or "{}")
cache_root = os.environ.get("VLLM_CACHE_ROOT")
if cache_root:  # as vLLM: what it compiled, under $VLLM_CACHE_ROOT/torch_compile_cache/<hash>/
    compiled = os.path.join(cache_root, "torch_compile_cache", "fakehash", "rank_0_0")
    os.makedirs(compiled, exist_ok=True)
    found = os.path.exists(os.path.join(compiled, "graph.py"))
    with open(os.path.join(compiled, "graph.py"), "a") as fh:
        fh.write(f"# compiled by pid {os.getpid()}\n")
    print(f"fake vllm: compile cache {'hit' if found else 'miss'} in {compiled}", flush=True)
token_s = float(faults.get("token_s", 0.004))
print(f"fake vllm: pid={os.getpid()} host={args.host} port={args.port} max_num_seqs={args.max_num_seqs} "
      f"seed={args.seed} trust_remote_code={args.trust_remote_code}", flush=True)
oom_from = faults.get("oom_from_max_num_seqs")
if oom_from is not None and args.max_num_seqs >= int(oom_from):
    print("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 GiB (fake)", flush=True)
    sys.exit(1)
healthy = args.seed not in faults.get("never_healthy_seeds", [])
die_after = int(faults.get("die_after_tokens", 5)) if args.seed in faults.get("die_mid_run_seeds", []) else None
die_delay = float(faults.get("die_delay_s", 0))
dying = threading.Event()


def die():
    if die_delay:
        dying.set()
        time.sleep(die_delay)
    os.kill(os.getpid(), signal.SIGKILL)
slots = threading.BoundedSemaphore(args.max_num_seqs)
lock = threading.Lock()
state = {"running": 0, "waiting": 0, "tokens": 0}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *a):
        pass

    def _json(self, code, payload):
        body = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _refused(self):
        if args.api_key and self.path.startswith("/v1") and \
                self.headers.get("Authorization") != f"Bearer {args.api_key}":
            self._json(401, {"error": "Unauthorized"})
            return True
        return False

    def do_GET(self):
        if self._refused():
            return
        if self.path == "/health":
            self._json(200 if healthy else 503, {})
        elif self.path == "/v1/models":
            self._json(200, {"data": [{"id": args.served_model_name}]})
        elif self.path == "/metrics":
            name = args.served_model_name
            text = (f'vllm:num_requests_running{{model_name="{name}"}} {state["running"]}\n'
                    f'vllm:num_requests_waiting{{model_name="{name}"}} {state["waiting"]}\n'
                    f'vllm:kv_cache_usage_perc{{model_name="{name}"}} 0.25\n').encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if faults.get("record_bodies") and os.environ.get("FAKE_VLLM_PIDS"):
            with lock, open(os.path.join(os.environ["FAKE_VLLM_PIDS"], "bodies.jsonl"), "a") as fh:
                fh.write(json.dumps({"path": self.path, "body": body}) + "\n")
        if self._refused():
            return
        chat = self.path == "/v1/chat/completions"
        prompt = body["messages"][-1]["content"] if "messages" in body else body.get("prompt")
        prompt_tokens = len(prompt) if isinstance(prompt, list) else len(str(prompt).split())
        if self.path == "/tokenize":  # one token per word
            self._json(200, {"count": prompt_tokens + (3 if "messages" in body else 0), "tokens": []})
            return
        if body.get("model") != args.served_model_name:
            self._json(404, {"error": {"message": f"The model `{body.get('model')}` does not exist."}})
            return
        n = int(body["max_tokens"])
        if not body.get("ignore_eos") and faults.get("natural_tokens"):  # the model stops by itself
            n = min(n, int(faults["natural_tokens"]))
        with lock:
            state["waiting"] += 1
        slots.acquire()
        with lock:
            state["waiting"] -= 1
            state["running"] += 1
        try:
            if dying.is_set():
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            if chat:  # the opening chunk announces the role and carries no token
                opening = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                self.wfile.write(f"data: {json.dumps({'choices': [opening]})}\n\n".encode())
            for i in range(n):
                if i:
                    time.sleep(token_s)
                with lock:
                    state["tokens"] += 1
                    if die_after is not None and state["tokens"] >= die_after and not dying.is_set():
                        print(f"fake vllm: simulated crash after {state['tokens']} tokens", flush=True)
                        threading.Thread(target=die, daemon=True).start() if die_delay else die()
                if dying.is_set():
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                choice = {"index": 0, "text": "x", "token_ids": [7], "finish_reason": "length" if i == n - 1 else None}
                if chat:  # like an OpenAI server without vLLM's token ids: one chunk per token
                    choice = {"index": 0, "delta": {"content": "x"}, "finish_reason": choice["finish_reason"]}
                self.wfile.write(f"data: {json.dumps({'choices': [choice]})}\n\n".encode())
                self.wfile.flush()
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": n}
            self.wfile.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\ndata: [DONE]\n\n".encode())
        finally:
            with lock:
                state["running"] -= 1
            slots.release()


server = ThreadingHTTPServer((args.host, args.port), Handler)
server.daemon_threads = True
engine = None
if faults.get("engine_child"):  # like vLLM's engine-core process: a forked child that outlives a killed parent
    engine = os.fork()
    if engine == 0:
        server.socket.close()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        while True:
            time.sleep(1)
pids = os.environ.get("FAKE_VLLM_PIDS")
if pids:
    host, port = server.server_address[:2]
    part = os.path.join(pids, f".{os.getpid()}.json.part")  # written whole, then renamed: a reader never
    with open(part, "w") as fh:                               # sees half a record (it did, on a loaded host)
        json.dump({"pid": os.getpid(), "pgid": os.getpgid(0), "host": host, "port": port, "argv": sys.argv,
                   "engine_pid": engine, "ppid": os.getppid()}, fh)
    os.replace(part, os.path.join(pids, f"{os.getpid()}.json"))
print(f"fake vllm: listening on {args.host}:{args.port}", flush=True)
server.serve_forever()
'''


def install(folder: Path) -> Path:
    """Write the fake ``vllm`` package under ``folder``; returns the folder to put on PYTHONPATH."""
    package = Path(folder) / "vllm" / "entrypoints" / "openai"
    package.mkdir(parents=True, exist_ok=True)
    for init in (Path(folder) / "vllm", Path(folder) / "vllm" / "entrypoints", package):
        (init / "__init__.py").write_text("")
    (package / "api_server.py").write_text(SERVER.replace("__MARKER__", MARKER))
    return Path(folder)


def use(monkeypatch, folder: Path, faults: dict | None = None) -> Path:
    """Install the fake and route the backend's server launches to it; returns the pid folder."""
    root = install(folder / "fake-vllm")
    pids = folder / "fake-vllm-pids"
    pids.mkdir(exist_ok=True)
    monkeypatch.setenv("PYTHONPATH", str(root))
    monkeypatch.setenv("HARNESS_ENGINE_PYTHON", sys.executable)  # this interpreter serves, whatever the engine
    monkeypatch.setenv("FAKE_VLLM_FAULTS", json.dumps(faults or {}))
    monkeypatch.setenv("FAKE_VLLM_PIDS", str(pids))
    return pids


def servers(pids: Path) -> list[dict]:
    """What each fake server recorded at bind time."""
    return [json.loads(p.read_text()) for p in sorted(pids.glob("*.json"))]


def alive(pid: int) -> bool:
    """True while ``pid`` runs this fake (and is not a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z" and b"vllm.entrypoints.openai.api_server" in cmdline


def leftovers() -> list[int]:
    """Pids of fake servers still running anywhere on this machine (none may outlive a test)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"vllm.entrypoints.openai.api_server" in cmdline and alive(int(entry.name)):
                try:
                    environ = (entry / "environ").read_bytes()
                except OSError:
                    environ = b""
                if b"FAKE_VLLM_FAULTS=" in environ:
                    out.append(int(entry.name))
    return out


__all__ = ["MARKER", "alive", "install", "leftovers", "servers", "use"]


def start_standalone(
    folder: Path, port: int, name: str, *, api_key: str | None = None, faults: dict | None = None, seed: int = 0
):
    """Start the fake as an already-running server (for the endpoint backend, which starts nothing):
    ``(process, log path)``; the caller stops it by its process group."""
    import subprocess
    import sys

    root = install(Path(folder) / "fake-vllm")
    log = Path(folder) / f"fake-{port}.log"
    argv = [
        sys.executable,
        str(root / "vllm" / "entrypoints" / "openai" / "api_server.py"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--served-model-name",
        name,
        "--seed",
        str(seed),
    ]
    if api_key:
        argv += ["--api-key", api_key]
    env = dict(os.environ, FAKE_VLLM_FAULTS=json.dumps(faults or {}))
    env.pop("FAKE_VLLM_PIDS", None)
    with open(log, "ab") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return proc, log
