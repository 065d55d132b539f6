"""What a vLLM server's log (``server.log`` of the run folder) tells: the evidence of a failure and the
facts vLLM prints at startup."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

LOG_TAIL_LINES = 40
OOM_PATTERNS = re.compile(
    r"out of memory|OutOfMemoryError|No available memory for the cache blocks|"
    r"larger than the available KV cache memory|not enough KV cache|Cannot allocate memory|MemoryError",
    re.IGNORECASE,
)


def tail(path: Path | None, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of the log at ``path`` (read from its last 64 KiB; "" where there is none)."""
    if path is None or not Path(path).exists():
        return ""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - 64 * 1024))
        text = fh.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def classify(log_tail: str, default: str) -> str:
    """A failure's cause: ``oom`` where the log says the server ran out of memory, else ``default``."""
    return "oom" if OOM_PATTERNS.search(log_tail) else default


def evidence(path: Path | None, default_cause: str) -> tuple[str, str]:
    """``(log_tail, cause)`` of a failed server: the last lines, preceded by the root-cause error line when
    it lies further back (vLLM prints long tracebacks after it), and the cause judged from the wider tail."""
    short, wide = tail(path), tail(path, 400)
    cause = classify(wide, default_cause)
    roots = [line for line in wide.splitlines() if re.search(r"\b\w*(Error|Exception):", line)]
    root = next((line for line in roots if OOM_PATTERNS.search(line)), roots[0] if roots else None)
    if root and root not in short:
        short = f"[root cause, earlier in server.log] {root.strip()}\n...\n{short}"
    return short, cause


def parse_server_facts(log_text: str) -> dict[str, Any]:
    """Facts vLLM logs at startup: KV-cache capacity (tokens), the maximum concurrency it allows (a factor) and
    the engine's initialisation time (seconds)."""
    facts: dict[str, Any] = {}
    m = re.search(r"KV cache size: ([\d,]+) tokens", log_text)
    if m:
        facts["kv_cache_size_tokens"] = int(m.group(1).replace(",", ""))
    m = re.search(r"Maximum concurrency for ([\d,]+) tokens per request: ([\d.]+)x", log_text)
    if m:
        facts["kv_cache_max_concurrency"] = float(m.group(2))
    m = re.search(r"init engine .* took ([\d.]+) s", log_text)
    if m:
        facts["engine_init_s"] = float(m.group(1))
    return facts
