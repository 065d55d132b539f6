"""Goodput: requests that met their latency targets, and the energy each of them cost.

With a time-to-first-token target (``ttft_target_ms``) and/or an inter-token latency target
(``itl_target_ms``, compared with the request's mean gap between consecutive tokens, as ``vllm bench
serve`` compares TPOT), a request *met its targets* when it succeeded and stayed within every target set.

* ``num_good_requests`` and ``slo_attainment_fraction``: over every request of the run;
* ``goodput_requests_per_sec``: requests that met their targets and finished inside the steady window,
  per second of that window;
* ``energy_per_good_request_joules``: the energy per request at that load spread over the requests that
  met their targets (``energy_per_request_joules / slo_attainment_fraction`` among the requests that
  succeeded): what a useful request costs when the others are waste. Null without energy or without a
  request that met its targets.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.measuring.windows import Request


def met_targets(r: Request, ttft_target_ms: float | None, itl_target_ms: float | None) -> bool:
    """Whether request ``r`` succeeded within its targets: time to first token (ms, from its submission) and
    mean gap between consecutive tokens (ms); a target of None is not checked."""
    if not r.success or r.first_token_time_s is None:
        return False
    if ttft_target_ms is not None and (r.first_token_time_s - r.submit_time_s) * 1000.0 > ttft_target_ms:
        return False
    if itl_target_ms is not None:
        times = list(r.token_times_s)
        if len(times) >= 2 and (times[-1] - times[0]) * 1000.0 / (len(times) - 1) > itl_target_ms:
            return False
    return True


def goodput_metrics(
    requests: Sequence[Request],
    load: dict | None,
    start: float | None,
    end: float | None,
    energy_per_request_joules: float | None,
) -> dict:
    """The goodput columns of an LLM run (empty when no target is set); ``start``/``end`` bound the steady
    window in seconds, ``load`` holds ``ttft_target_ms`` and ``itl_target_ms``."""
    load = load or {}
    ttft, itl = load.get("ttft_target_ms"), load.get("itl_target_ms")
    if ttft is None and itl is None:
        return {}
    good = [r for r in requests if met_targets(r, ttft, itl)]
    ok = [r for r in requests if r.success]
    in_window = [
        r
        for r in good
        if start is not None and end is not None and r.finish_time_s is not None and start < r.finish_time_s <= end
    ]
    duration = (end - start) if start is not None and end is not None else None
    attainment_ok = len(good) / len(ok) if ok else None
    return {
        "ttft_target_ms": ttft,
        "itl_target_ms": itl,
        "num_good_requests": len(good),
        "slo_attainment_fraction": len(good) / len(requests) if requests else None,
        "goodput_requests_per_sec": len(in_window) / duration if duration else None,
        "energy_per_good_request_joules": (
            energy_per_request_joules / attainment_ok
            if energy_per_request_joules is not None and attainment_ok
            else None
        ),
    }
