"""What a vLLM run sends: its requests' drawn lengths and prompt token ids, and their media for image and video chat.

:func:`plan_requests` draws the lengths (:mod:`harness.workloads.lengths`) and the prompt token ids: synthetic
ones, a dataset's prompts (the ``prompts`` option, :mod:`harness.workloads.prompts`) or fill-in-the-middle
prompts (:mod:`harness.workloads.fim`). :func:`plan_media` turns each prompt into a question's text with its
synthetic images or frames (:mod:`harness.workloads.multimodal`); :func:`media_context_tokens` is the context
room the media get and :func:`with_media` sends them through the chat endpoint. Used by
:class:`harness.workloads.vllm_backend.VLLMBackend`, which keeps the results on the backend.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.config import Configuration
from harness.errors import ConfigError, HarnessError
from harness.workloads.archs import text_config
from harness.workloads.base import WorkloadError

if TYPE_CHECKING:
    from harness.workloads.archs import ModelFolder
    from harness.workloads.lengths import LengthPlan
    from harness.workloads.loadgen import LoadSpec

MEDIA_OPTIONS = ("images_per_request", "image_size", "video_frames", "frame_size")
# Context room for a multimodal request's media tokens on top of its text (capped by the model's context).
MEDIA_CONTEXT_TOKENS = 16384


def plan_requests(
    cfg: Configuration, opts: Mapping[str, Any], model: ModelFolder
) -> tuple[LengthPlan, list[list[int]], dict | None]:
    """The requests' drawn lengths (token counts) and prompt token ids, with the prompts' facts for run.json
    (None for synthetic prompts): with the ``prompts`` option, a dataset's prompts tokenized by the served
    model's tokenizer; for ``sourcegraph-fim`` without it, fill-in-the-middle prompts (:func:`fim_prompts`)."""
    from harness.workloads import lengths

    try:
        plan = lengths.plan_for(cfg)
    except HarnessError as exc:  # bad length options, or the published lengths unreadable here
        cause, message = lengths.reference_failure(exc)
        raise WorkloadError(message, cause=cause) from None
    fim = cfg.task == "sourcegraph-fim"
    prompts = lengths.prompt_token_ids(  # a FIM prompt opens with its prefix token, not BOS
        plan.prompt_tokens, model.regular_ids, None if fim else model.bos_token_id, int(cfg.seed or 0)
    )
    if fim and not opts["prompts"]:
        return fim_prompts(cfg, model, plan, prompts)
    if not opts["prompts"]:
        return plan, prompts, None
    prompts, prompt_info = dataset_prompt_ids(cfg, opts, model.path)
    plan = dataclasses.replace(plan, prompt_tokens=tuple(len(p) for p in prompts), prompt_source=prompt_info["source"])
    return plan, prompts, prompt_info


def fim_prompts(
    cfg: Configuration, model: ModelFolder, plan: LengthPlan, prompts: list[list[int]]
) -> tuple[LengthPlan, list[list[int]], dict]:
    """The drawn prompts as fill-in-the-middle prompts (:mod:`harness.workloads.fim`), of the same lengths in
    tokens: ``(plan, prompt token ids, the prompts' facts for run.json)``."""
    from harness.workloads import fim

    try:
        ids = fim.fim_token_ids(model.path)
    except ConfigError as exc:
        raise WorkloadError(str(exc), cause="bad-config") from None
    prompts = fim.fim_prompt_ids(prompts, ids, int(cfg.seed or 0))
    plan = dataclasses.replace(plan, prompt_tokens=tuple(len(p) for p in prompts))
    return (
        plan,
        prompts,
        {
            "source": "fill-in-the-middle: random code token ids around the cursor",
            "shape": "".join(fim.FIM_TOKENS[:1]) + "prefix" + fim.FIM_TOKENS[1] + "suffix" + fim.FIM_TOKENS[2],
            "fim_token_ids": list(ids),
            "prefix_share": list(fim.PREFIX_SHARE),
        },
    )


def plan_media(
    cfg: Configuration, opts: Mapping[str, Any], model: ModelFolder, prompts: list[list[int]]
) -> tuple[tuple | None, dict | None]:
    """Image and video chat: each request's question as text (its prompt ids decoded by the served model's
    tokenizer) and its synthetic media (:mod:`harness.workloads.multimodal`): ``((MediaShape, texts, data URLs
    per request), the media's facts for run.json)``; ``(None, None)`` for a text task."""
    from transformers import AutoTokenizer

    from harness.workloads import multimodal

    if cfg.task not in multimodal.MULTIMODAL_TASKS:
        return None, None
    try:
        shape = multimodal.media_shape(cfg.task, opts)
    except ConfigError as exc:
        raise WorkloadError(str(exc), cause="bad-config") from None
    tok = AutoTokenizer.from_pretrained(str(model.path))
    texts = [tok.decode(ids[1:] if ids and ids[0] == model.bos_token_id else ids) for ids in prompts]
    urls = multimodal.media_for_requests(shape, len(texts), int(cfg.seed or 0))
    return (shape, texts, urls), shape.as_info() | {
        "sent_as": "image_url parts (base64 JPEG data URLs) in one user message, then the question's text",
        "video_sent_as": "its frames, in order" if shape.as_frames_of_a_clip else None,
        "distinct_media_sets": len({id(u) for u in urls}),
        "shape_source": "options"
        if any(opts.get(k) is not None for k in MEDIA_OPTIONS)
        else "harness.workloads.multimodal.DEFAULT_SHAPES (assumed: the reference publishes none)",
        "prompt_tokens_are": "the question's text only (the media's tokens come on top)",
    }


def media_context_tokens(plan: LengthPlan, hf_config: Mapping[str, Any]) -> int:
    """Context room in tokens for a multimodal request's media on top of the longest request's text: at most
    :data:`MEDIA_CONTEXT_TOKENS`, and no more than the model's ``max_position_embeddings`` leaves."""
    longest = max(p + o for p, o in zip(plan.prompt_tokens, plan.output_tokens, strict=True))
    room = int(text_config(hf_config).get("max_position_embeddings", longest)) - longest
    return max(0, min(MEDIA_CONTEXT_TOKENS, room))


def with_media(spec: LoadSpec, media: tuple, prompt_tokens: Sequence[int]) -> LoadSpec:
    """``spec`` sending its requests through the chat endpoint, each with its media and question (``media`` as
    :func:`plan_media` gives it); ``prompt_tokens`` are the questions' lengths in tokens."""
    from harness.workloads import multimodal

    _, texts, urls = media
    load_spec = multimodal.ChatLoad(spec.model, texts, urls, spec.output_tokens, spec.temperature)
    return dataclasses.replace(spec, request=multimodal.chat_request(load_spec), prompt_lengths=list(prompt_tokens))


def dataset_prompt_ids(cfg: Configuration, opts: Mapping[str, Any], folder: Path) -> tuple[list[list[int]], dict]:
    """Token ids of the run's prompts from a dataset (options ``prompts``/``prompt_field``), by ``folder``'s
    tokenizer, and the prompts' facts for run.json; ``max_prompt_tokens`` cuts each to at most that many."""
    from transformers import AutoTokenizer

    from harness.workloads import prompts

    try:
        chosen = prompts.load(
            str(opts["prompts"]), cfg.knob("num_requests"), int(cfg.seed or 0), prompt_field=opts["prompt_field"]
        )
    except ConfigError as exc:
        raise WorkloadError(str(exc), cause="bad-config") from None
    tok = AutoTokenizer.from_pretrained(str(folder))
    ids = [list(tok(p.text)["input_ids"]) for p in chosen.prompts]
    cap = opts.get("max_prompt_tokens")
    if cap:
        ids = [x[: int(cap)] for x in ids]
    return ids, chosen.as_info() | {"prompt_tokens_counted_by": f"tokenizer of {folder}"}
