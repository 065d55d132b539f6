"""Real prompts for an LLM run: read from a dataset, tokenized with the served model's tokenizer.

Sources (the ``prompts`` option):

* a local **JSONL** file (``.jsonl``/``.ndjson``: one JSON object per line) or **Parquet** file (``.parquet``),
  one prompt per row;
* ``hf:<dataset id>`` (e.g. ``hf:lmarena-ai/arena-human-preference-55k``): a Hugging Face dataset, read with
  the ``datasets`` package when it is installed and the hub is reachable (a clear one-line error otherwise).

The prompt is the row's ``prompt_field`` (default: the first of ``prompt``, ``text``, ``question``,
``instruction`` that the rows have). A chat conversation (a list of ``{role, content}`` messages, as the
LMArena rows hold) gives its first user message. An optional ``output_field`` (default
``output_tokens`` when present) holds a reference output length in tokens.

A run of N requests takes rows in a seeded random order (the same seed, the same prompts), cycling through
the file when it has fewer than N rows.

Prompt lengths are counted with, in this order: the tokenizer of a model folder (``tokenizer`` option, or the
folder the backend serves), the server's ``/tokenize`` endpoint (vLLM and SGLang have one), else an estimate
of 4 characters per token, flagged as such in the run's record. The server's own count (``usage``) of each
request replaces the planned one when the answer carries it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError

PROMPT_FIELDS = ("prompt", "text", "question", "instruction")
OUTPUT_FIELDS = ("output_tokens", "output_len", "reference_output_tokens")
CHARS_PER_TOKEN = 4.0  # the estimate used when no tokenizer is reachable


@dataclass(frozen=True)
class Prompt:
    text: str
    reference_output_tokens: int | None = None
    row: int = 0  # index of the row in the source


@dataclass(frozen=True)
class PromptSet:
    prompts: tuple[Prompt, ...]
    source: str  # what the run records
    rows: int  # rows in the source

    def as_info(self) -> dict:
        """What a run records about its prompts: the source, its rows, the rows used."""
        return {"source": self.source, "rows_in_source": self.rows, "rows_used": [p.row for p in self.prompts]}


def _text(value) -> str | None:
    if isinstance(value, str):
        return value
    if hasattr(value, "tolist") and not isinstance(value, str):  # Parquet gives lists as arrays
        value = value.tolist()
    if isinstance(value, (list, tuple)):  # a conversation: its first user message
        for message in value:
            if (
                isinstance(message, dict)
                and message.get("role") in ("user", "human")
                and isinstance(message.get("content"), str)
            ):
                return message["content"]
    return None


def _read_rows(source: str, split: str) -> tuple[list[dict], str]:
    if source.startswith("hf:"):
        dataset_id = source[3:]
        try:
            import datasets
        except ModuleNotFoundError:
            raise ConfigError(
                f"prompts {source!r}: reading a Hugging Face dataset needs the `datasets` package, "
                f"which is not installed here (use a local JSONL or Parquet file)"
            ) from None
        try:
            ds = datasets.load_dataset(dataset_id, split=split)
        except Exception as exc:  # noqa: BLE001 -- no network, unknown id, gated dataset: one line
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise ConfigError(f"prompts {source!r}: the dataset cannot be loaded ({first})") from None
        return [dict(r) for r in ds], f"Hugging Face dataset {dataset_id} (split {split})"
    path = Path(source).expanduser()
    if not path.is_file():
        raise ConfigError(f"prompts file {path} does not exist (a .jsonl or .parquet file, or hf:<dataset id>)")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise ConfigError(f"prompts file {path}: line {number} is not JSON ({exc})") from None
            if not isinstance(row, dict):
                raise ConfigError(f"prompts file {path}: line {number} is not a JSON object")
            rows.append(row)
        return rows, f"local JSONL file {path}"
    if suffix == ".parquet":
        import pandas as pd

        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(f"prompts file {path} cannot be read as Parquet ({type(exc).__name__})") from None
        return frame.to_dict(orient="records"), f"local Parquet file {path}"
    raise ConfigError(f"prompts file {path}: unknown format {suffix!r} (use .jsonl or .parquet)")


def load(
    source: str,
    num_requests: int,
    seed: int = 0,
    *,
    prompt_field: str | None = None,
    output_field: str | None = None,
    split: str = "train",
) -> PromptSet:
    """``num_requests`` prompts from ``source`` (see the module docstring)."""
    import numpy as np

    rows, described = _read_rows(str(source), split)
    if not rows:
        raise ConfigError(f"prompts {source}: no rows")
    field = prompt_field or next((f for f in PROMPT_FIELDS if f in rows[0]), None)
    if field is None or field not in rows[0]:
        raise ConfigError(
            f"prompts {source}: no prompt field {prompt_field or ' / '.join(PROMPT_FIELDS)!r} in the "
            f"rows (they have: {', '.join(map(str, rows[0]))}); set prompt_field"
        )
    out_field = output_field or next((f for f in OUTPUT_FIELDS if f in rows[0]), None)
    if output_field and output_field not in rows[0]:
        raise ConfigError(f"prompts {source}: no output field {output_field!r} in the rows")
    usable = []
    for i, row in enumerate(rows):
        text = _text(row.get(field))
        if not text:
            continue
        ref = row.get(out_field) if out_field else None
        if ref is not None:
            try:
                ref = int(ref)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"prompts {source}: row {i}: {out_field} must be a whole number of tokens, got {ref!r}"
                ) from None
            if ref < 1:
                raise ConfigError(f"prompts {source}: row {i}: {out_field} must be at least 1, got {ref}")
        usable.append(Prompt(text, ref, i))
    if not usable:
        raise ConfigError(f"prompts {source}: no row has a text prompt in {field!r}")
    rng = np.random.default_rng([int(seed), 11])
    chosen: list[Prompt] = []
    while len(chosen) < num_requests:
        chosen.extend(usable[k] for k in rng.permutation(len(usable)))
    note = f"{described}, field {field!r}" + (f", reference output lengths from {out_field!r}" if out_field else "")
    return PromptSet(tuple(chosen[:num_requests]), note, len(rows))


def messages(text: str) -> list[dict]:
    """A chat request's messages for one prompt (a single user turn)."""
    return [{"role": "user", "content": text}]


def count_tokens(
    texts: list[str],
    *,
    api: str = "completions",
    tokenizer: str | Path | None = None,
    base_url: str | None = None,
    model: str | None = None,
    headers: dict | None = None,
) -> tuple[list[int], str]:
    """Prompt length of each text in tokens and how it was counted (see the module docstring).

    ``api="chat"`` counts the prompt as the chat template renders it (one user message)."""
    if tokenizer is not None:
        from transformers import AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(str(tokenizer))
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(
                f"tokenizer {tokenizer} cannot be loaded ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:160] if str(exc) else ''})"
            ) from None
        if api == "chat" and getattr(tok, "chat_template", None):
            counts = [
                len(_ids(tok.apply_chat_template(messages(t), add_generation_prompt=True, tokenize=True)))
                for t in texts
            ]
        else:
            counts = [len(tok(t)["input_ids"]) for t in texts]
        return counts, f"tokenizer of {tokenizer}"
    if base_url is not None:
        served = _server_counts(texts, api, base_url, model, headers)
        if served is not None:
            return served, f"the server's /tokenize ({base_url})"
    return (
        [max(1, math.ceil(len(t) / CHARS_PER_TOKEN)) for t in texts],
        f"estimate: {CHARS_PER_TOKEN:g} characters per token (no tokenizer reachable)",
    )


def _ids(value) -> list:
    if isinstance(value, dict) or hasattr(value, "keys"):  # a BatchEncoding
        value = value["input_ids"]
    return list(value)


def _server_counts(texts, api, base_url, model, headers) -> list[int] | None:
    import httpx

    counts = []
    try:
        with httpx.Client(timeout=10.0, trust_env=False, headers=headers or {}) as client:
            for t in texts:
                body = {
                    "model": model,
                    **({"messages": messages(t), "add_generation_prompt": True} if api == "chat" else {"prompt": t}),
                }
                resp = client.post(f"{base_url}/tokenize", json=body)
                if resp.status_code != 200:
                    return None
                data = resp.json()
                count = data.get("count", len(data.get("tokens") or []))
                if not isinstance(count, int) or count < 1:
                    return None
                counts.append(count)
    except (httpx.HTTPError, ValueError):
        return None
    return counts
