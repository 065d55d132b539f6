"""Code completion requests (``sourcegraph-fim``): fill-in-the-middle prompts in the reference's shape.

The reference sends Sourcegraph's completions as fill-in-the-middle prompts: the code before the cursor and
the code after it, framed by the model's FIM tokens, the model writing the middle. Qwen's spelling (Qwen2.5
Coder, Qwen3 Coder, the reference's code models)::

    <|fim_prefix|> prefix ... <|fim_suffix|> suffix ... <|fim_middle|>

:func:`fim_prompt_ids` turns a drawn prompt (token ids of the drawn length) into that shape, keeping its
length: the three FIM tokens take the places of three of its tokens, and the split between prefix and suffix
is drawn per request (uniform over :data:`PREFIX_SHARE`). The ids of the FIM tokens come from the served
model's tokenizer (:func:`fim_token_ids`); an architecture without them cannot serve this task.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from harness.errors import ConfigError

FIM_TOKENS: tuple[str, str, str] = ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>")
# The prefix's share of the code around the cursor (the rest is the suffix), drawn uniformly per request.
PREFIX_SHARE: tuple[float, float] = (0.3, 0.9)
MIN_PROMPT_TOKENS = 5  # prefix token, one code token, suffix token, one code token, middle token


def fim_token_ids(folder: Path | str) -> tuple[int, int, int]:
    """The (prefix, suffix, middle) token ids of the tokenizer in model folder ``folder``; one-line
    :class:`ConfigError` when it lacks any of :data:`FIM_TOKENS`."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    vocab = tok.get_vocab()
    missing = [t for t in FIM_TOKENS if t not in vocab]
    if missing:
        raise ConfigError(
            f"the tokenizer of {folder} has no fill-in-the-middle tokens {', '.join(missing)} "
            f"(sourcegraph-fim needs a code model's tokenizer)"
        )
    prefix, suffix, middle = (int(vocab[t]) for t in FIM_TOKENS)
    return prefix, suffix, middle


def fim_prompt_ids(prompts: Sequence[Sequence[int]], fim_ids: tuple[int, int, int], seed: int) -> list[list[int]]:
    """Each prompt (token ids) as ``[prefix] + code before + [suffix] + code after + [middle]``, of the same
    length; the prefix's share of the code is drawn from :data:`PREFIX_SHARE` (seeded by ``seed``). A prompt
    shorter than :data:`MIN_PROMPT_TOKENS` is lengthened to it (its own ids repeated)."""
    rng = np.random.default_rng([seed, 5])
    prefix_id, suffix_id, middle_id = fim_ids
    out = []
    for ids in prompts:
        code = list(ids)
        while len(code) < MIN_PROMPT_TOKENS:
            code = code + (code or [middle_id])
        code = code[: max(len(ids), MIN_PROMPT_TOKENS) - 3]
        cut = min(len(code) - 1, max(1, round(len(code) * rng.uniform(*PREFIX_SHARE))))
        out.append([prefix_id, *code[:cut], suffix_id, *code[cut:], middle_id])
    return out
