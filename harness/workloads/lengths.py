"""Prompt and output lengths of an LLM run: drawn, seeded and recorded.

Output lengths come from the reference data's published per-model histogram for
the task (:func:`harness.published.reference.output_length_distribution`): a bin is drawn
with probability proportional to its count, then an integer length uniformly
among the integers inside that bin. Generation is forced to that length, so a
run's energy reflects the task's token mix.

The reference data publish no prompt lengths; prompts follow a stated
log-normal model per task (:data:`PROMPT_MODELS`), recorded as such with the run.

CPU runs may shrink the lengths: ``output_scale`` multiplies every drawn length
(keeping the shape of the distribution), then ``max_output_tokens`` caps it.
Both are recorded, together with the uncapped draws.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.config import Configuration
from harness.errors import ConfigError


@dataclass(frozen=True)
class PromptModel:
    """Log-normal prompt lengths, clipped to ``[min_tokens, max_tokens]``."""

    median_tokens: float
    sigma: float
    min_tokens: int
    max_tokens: int
    note: str

    def describe(self) -> str:
        """The model in words, as a run records it."""
        return (
            f"assumed log-normal (median {self.median_tokens:g} tokens, sigma {self.sigma:g}) clipped to "
            f"[{self.min_tokens}, {self.max_tokens}]: {self.note}"
        )


# The reference publishes no prompt lengths; these are stated assumptions about each workload.
PROMPT_MODELS: dict[str, PromptModel] = {
    "lm-arena-chat": PromptModel(80, 1.2, 8, 2048, "short human chat prompts with a long tail"),
    "gpqa": PromptModel(250, 0.4, 64, 1024, "one multiple-choice science question with instructions"),
    "sourcegraph-fim": PromptModel(1500, 0.6, 128, 8192, "code prefix and suffix around the gap"),
    # the text beside the images or the clip (the media's own tokens come on top)
    "image-chat": PromptModel(20, 1.0, 2, 512, "a short question about the image(s)"),
    "video-chat": PromptModel(30, 0.5, 8, 256, "a question about the clip"),
}

# Fallback histogram source per task when neither the config nor the architecture names one.
DEFAULT_LENGTH_SOURCES = {
    "lm-arena-chat": "meta-llama/Llama-3.1-8B-Instruct",
    "gpqa": "Qwen/Qwen3-8B",
    "sourcegraph-fim": "Qwen/Qwen3-Coder-30B-A3B-Instruct",
    "image-chat": "Qwen/Qwen3-VL-8B-Instruct",
    "video-chat": "Qwen/Qwen3-VL-8B-Instruct",
}


@dataclass(frozen=True)
class Histogram:
    edges: tuple[float, ...]  # len(counts) + 1 bin edges
    counts: tuple[int, ...]
    source: str

    @property
    def probabilities(self) -> np.ndarray:
        """Each bin's share of the counts (sums to 1)."""
        counts = np.asarray(self.counts, dtype=float)
        return counts / counts.sum()

    def bin_of(self, lengths: np.ndarray) -> np.ndarray:
        """Bin index of each length (the last bin includes its upper edge)."""
        idx = np.searchsorted(np.asarray(self.edges), lengths, side="right") - 1
        return np.clip(idx, 0, len(self.counts) - 1)


def reference_histogram(model_id: str, task: str) -> Histogram:
    """The published output-length histogram of ``model_id`` on ``task``."""
    from harness.published import reference

    dist = reference.output_length_distribution(model_id, task)
    edges, counts = tuple(float(x) for x in dist["bins"]), tuple(int(c) for c in dist["counts"])
    if len(edges) != len(counts) + 1 or sum(counts) <= 0:
        raise ConfigError(f"published output lengths of {model_id} on {task} are malformed")
    return Histogram(edges, counts, f"reference output-length histogram of {model_id} on {task}")


def draw_from_histogram(hist: Histogram, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` integer lengths: a bin by its count, then an integer uniformly inside the bin."""
    bins = rng.choice(len(hist.counts), size=n, p=hist.probabilities)
    edges = np.asarray(hist.edges)
    lo = np.ceil(edges[:-1]).astype(np.int64)
    hi = np.ceil(edges[1:]).astype(np.int64) - 1  # integers k with lo_edge <= k < hi_edge
    hi[-1] = math.floor(edges[-1])  # the last bin includes its upper edge
    hi = np.maximum(hi, lo)  # a bin narrower than one integer holds its lower edge
    u = rng.random(n)
    out = lo[bins] + np.floor(u * (hi[bins] - lo[bins] + 1)).astype(np.int64)
    return np.maximum(out, 1)


def draw_prompt_lengths(model: PromptModel, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` prompt lengths in tokens from the log-normal ``model``, rounded and clipped to its bounds."""
    raw = np.exp(math.log(model.median_tokens) + model.sigma * rng.standard_normal(n))
    return np.clip(np.rint(raw), model.min_tokens, model.max_tokens).astype(np.int64)


@dataclass(frozen=True)
class LengthPlan:
    """Per-request prompt and output lengths of one run, with where they came from."""

    task: str
    seed: int
    prompt_tokens: tuple[int, ...]
    output_tokens: tuple[int, ...]  # what each request is forced to generate
    output_tokens_uncapped: tuple[int, ...]  # the draws before scale and cap
    output_source: str
    prompt_source: str
    output_scale: float = 1.0
    max_output_tokens: int | None = None
    max_prompt_tokens: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.output_tokens)

    def as_info(self) -> dict:
        """JSON-ready description for run.json (lengths themselves go with each request record)."""
        d = asdict(self)
        for key in ("prompt_tokens", "output_tokens", "output_tokens_uncapped"):
            d[key] = list(d[key])
        d["mean_output_tokens"] = float(np.mean(self.output_tokens)) if self.output_tokens else None
        d["mean_prompt_tokens"] = float(np.mean(self.prompt_tokens)) if self.prompt_tokens else None
        return d


def resolve_length_source(task: str, length_source: str | None = None, model: str | None = None) -> str:
    """The published model whose histogram to draw from: the config's, else the architecture's, else the task's."""
    if length_source:
        return length_source
    if model:
        from harness.workloads import archs

        try:
            found = archs.get(model).length_source(task)
        except ConfigError:
            found = None
        if found:
            return found
    if task not in DEFAULT_LENGTH_SOURCES:
        raise ConfigError(f"task {task!r} has no published output lengths to draw from")
    return DEFAULT_LENGTH_SOURCES[task]


# Plans drawn elsewhere and loaded from a file (hosts without the reference data, e.g. a bare GPU box).
_PRESETS: dict[str, LengthPlan] = {}


def _preset_key(task, num_requests, seed, source, max_output_tokens, max_prompt_tokens, output_scale) -> str:
    return json.dumps(
        [task, int(num_requests), int(seed), source, max_output_tokens, max_prompt_tokens, float(output_scale)]
    )


def _plan_key(p: LengthPlan) -> str:
    return _preset_key(
        p.task,
        len(p),
        p.seed,
        p.extra.get("length_source_model"),
        p.max_output_tokens,
        p.max_prompt_tokens,
        p.output_scale,
    )


def export_plans(plans: list[LengthPlan], path: Path | str) -> Path:
    """Write drawn plans (our own seeded samples, with their sources) for :func:`load_plans` elsewhere."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"kind": "harness-length-plans", "plans": [asdict(p) for p in plans]}
    path.write_text(json.dumps(payload, indent=1) + "\n")
    return path


def load_plans(path: Path | str) -> int:
    """Register the plans of a file written by :func:`export_plans`; :func:`plan` then returns them."""
    try:
        payload = json.loads(Path(path).read_text())
        plans = [
            LengthPlan(
                **{**d, **{k: tuple(d[k]) for k in ("prompt_tokens", "output_tokens", "output_tokens_uncapped")}}
            )
            for d in payload["plans"]
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"length plans file {path} cannot be read: {exc}") from None
    for p in plans:
        _PRESETS[_plan_key(p)] = p
    return len(plans)


def plan(
    task: str,
    num_requests: int,
    seed: int = 0,
    *,
    length_source: str | None = None,
    model: str | None = None,
    max_output_tokens: int | None = None,
    max_prompt_tokens: int | None = None,
    output_scale: float = 1.0,
) -> LengthPlan:
    """Draw the lengths of ``num_requests`` requests for ``task`` (seeded: same inputs, same lengths)."""
    if num_requests < 1:
        raise ConfigError(f"num_requests must be at least 1, got {num_requests}")
    if not output_scale > 0:
        raise ConfigError(f"output_length_scale must be positive, got {output_scale}")
    for name, cap in (("max_output_tokens", max_output_tokens), ("max_prompt_tokens", max_prompt_tokens)):
        if cap is not None and cap < 1:
            raise ConfigError(f"{name} must be at least 1, got {cap}")
    if task not in PROMPT_MODELS:
        raise ConfigError(f"task {task!r} has no LLM length model (known: {', '.join(PROMPT_MODELS)})")
    source = resolve_length_source(task, length_source, model)
    preset = _PRESETS.get(
        _preset_key(task, num_requests, seed, source, max_output_tokens, max_prompt_tokens, output_scale)
    )
    if preset is not None:
        return preset
    hist = reference_histogram(source, task)
    out_rng = np.random.default_rng([seed, 1])
    prompt_rng = np.random.default_rng([seed, 2])
    drawn = draw_from_histogram(hist, num_requests, out_rng)
    outputs = np.maximum(1, np.rint(drawn * output_scale)).astype(np.int64)
    if max_output_tokens is not None:
        outputs = np.minimum(outputs, max_output_tokens)
    prompt_model = PROMPT_MODELS[task]
    prompts = draw_prompt_lengths(prompt_model, num_requests, prompt_rng)
    if max_prompt_tokens is not None:
        prompts = np.minimum(prompts, max_prompt_tokens)
    return LengthPlan(
        task=task,
        seed=seed,
        prompt_tokens=tuple(int(x) for x in prompts),
        output_tokens=tuple(int(x) for x in outputs),
        output_tokens_uncapped=tuple(int(x) for x in drawn),
        output_source=hist.source,
        prompt_source=prompt_model.describe(),
        output_scale=float(output_scale),
        max_output_tokens=max_output_tokens,
        max_prompt_tokens=max_prompt_tokens,
        extra={"length_source_model": source},
    )


REFERENCE_UNAVAILABLE = "reference-unavailable"  # the cause of a run whose published lengths cannot be read


def how_to_provide_reference() -> str:
    """The line that says how to make the published data readable here."""
    from harness.published import reference

    return (
        f"provide the published data: set {reference.ENV_VAR} to a copy of {reference.REPOSITORY}@"
        f"{reference.COMMIT[:7]}/{reference.FOLDER}, or let `python -m harness reference` download the pinned "
        f"copy (needs the network once)"
    )


def reference_failure(exc: Exception) -> tuple[str, str]:
    """``(cause, message)`` of a run whose length plan raised ``exc``: the published data unreadable here (missing,
    not downloadable, damaged) is ``reference-unavailable`` with :func:`how_to_provide_reference`; anything else
    (no published lengths for that model and task, bad length options) is ``bad-config``."""
    from harness.errors import ReferenceDataError
    from harness.published import reference

    message = str(exc)
    unreadable = isinstance(exc, ReferenceDataError) and (message.startswith(("reference file", reference.ENV_VAR)))
    if not unreadable:
        return "bad-config", message
    if reference.ENV_VAR in message:  # it says where a copy goes already: add the other way
        return REFERENCE_UNAVAILABLE, f"{message}, or let `python -m harness reference` download the pinned copy"
    return REFERENCE_UNAVAILABLE, f"{message}; {how_to_provide_reference()}"


def plan_for(cfg: Configuration) -> LengthPlan:
    """The length plan of a :class:`harness.config.Configuration` (LLM tasks)."""
    options = dict(cfg.options or {})
    return plan(
        cfg.task,
        cfg.knob("num_requests"),
        int(cfg.seed or 0),
        length_source=cfg.length_source,
        model=cfg.model,
        max_output_tokens=cfg.max_output_tokens,
        max_prompt_tokens=options.get("max_prompt_tokens"),
        output_scale=float(options.get("output_length_scale", 1.0)),
    )


def prompt_token_ids(
    lengths: tuple[int, ...], regular_ids: tuple[int, int], bos_token_id: int | None, seed: int
) -> list[list[int]]:
    """Random prompts of the given lengths over the tokenizer's trained ids, each starting with BOS."""
    rng = np.random.default_rng([seed, 3])
    lo, hi = regular_ids
    prompts = []
    for n in lengths:
        ids = rng.integers(lo, hi + 1, size=n).tolist()
        if bos_token_id is not None and n > 0:
            ids[0] = int(bos_token_id)
        prompts.append(ids)
    return prompts
