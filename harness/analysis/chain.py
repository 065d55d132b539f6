"""An energy ratio read as a causal chain: knob -> latent metric (the batch reached) -> time and power -> energy.

:func:`harness.analysis.tables.attribute` splits a ratio into factors whose product is exact, but two of them,
the concurrency reached and the token rate of one running request, are not separate causes: a larger batch
slows each request's decode step *because* it runs more requests at once. Read as a chain, the batch reached is
the latent metric, the whole batch's token throughput is what it buys (the two factors multiplied), power is what
it costs, and energy per token is power over throughput::

    chain = causal_chain(tables.attribute(a, b))
    chain.throughput_ratio            # tokens/s of the whole batch, B over A
    chain.energy_per_token_ratio      # = power_ratio / throughput_ratio (x the residual, 1 on published rows)
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.analysis.tables import Attribution


@dataclass(frozen=True)
class Chain:
    """The links of one LLM comparison, each a ratio of B over A (no unit) unless named otherwise."""

    batch_a: float  # requests running together in A's steady state (count)
    batch_b: float
    batch_ratio: float  # batch reached
    request_rate_ratio: float  # tokens/s of one running request: the price of the batch (below 1 when it grows)
    throughput_ratio: float  # tokens/s of the whole batch = batch_ratio x request_rate_ratio
    power_ratio: float  # average power of all the GPUs
    energy_per_token_ratio: float  # = power_ratio / throughput_ratio x residual
    output_length_ratio: float
    energy_per_response_ratio: float  # = energy_per_token_ratio x output_length_ratio
    residual: float  # 1 when the row identities hold


def causal_chain(att: Attribution) -> Chain:
    """The chain of an LLM :class:`~harness.analysis.tables.Attribution` (diffusion attributions have no batch of
    requests reached: they raise ``ValueError``)."""
    if att.kind != "llm":
        raise ValueError("a causal chain is read from a language-model attribution")
    f = {x.name: x for x in att.factors}
    conc, rate = f["concurrency reached"], f["token rate per running request"]
    if None in (conc.value_a, conc.value_b, rate.value_a, rate.value_b):
        raise ValueError("the attribution lacks the batch reached or the token rate of its configurations")
    batch_a, batch_b = float(conc.value_a or 0), float(conc.value_b or 0)
    batch_ratio = batch_b / batch_a
    request_rate_ratio = float(rate.value_b or 0) / float(rate.value_a or 0)
    throughput_ratio = batch_ratio * request_rate_ratio
    power_ratio = f["average power"].ratio
    residual = f["measurement residual"].ratio
    per_token = power_ratio / throughput_ratio * residual
    length = f["output length"].ratio
    return Chain(
        batch_a,
        batch_b,
        batch_ratio,
        request_rate_ratio,
        throughput_ratio,
        power_ratio,
        per_token,
        length,
        per_token * length,
        residual,
    )


def times(ratio: float, up: str = "more", down: str = "less") -> str:
    """A ratio in words: ``2.5 -> "2.5 times more"``, ``0.25 -> "4 times less"``, ``1.001 -> "unchanged"``."""
    if abs(ratio - 1) < 0.005:
        return "unchanged"
    return f"{ratio:.3g} times {up}" if ratio >= 1 else f"{1 / ratio:.3g} times {down}"
