"""The synthetic tokenizer of the generated model folders: a byte-level BPE tokenizer trained from scratch on a seeded
synthetic corpus and laid out over exactly a model's vocabulary (:func:`build_tokenizer`).

The trained tokens come first (at most :data:`MAX_TRAINED_TOKENS`), the special tokens sit at the ids the model
config names, and reserved placeholder tokens fill the rest, so every id a random-weight model can emit decodes.
:mod:`harness.workloads.archs` writes the folders (and re-exports these names); :data:`TOKENIZER_RECIPE` is part of
their cache digest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import cast

from harness.errors import ConfigError

# Bump when the tokenizer recipe (corpus, trainer settings, layout) changes: cached folders are rebuilt.
TOKENIZER_RECIPE = "bpe-synthetic-v2"
MAX_TRAINED_TOKENS = 8192
TOKEN_ROLES = ("bos_token", "eos_token", "pad_token")  # roles a tokenizer config names; other specials are plain


def synthetic_corpus(num_words: int = 200_000, seed: int = 0) -> list[str]:
    """Seeded pseudo-text (syllable words, Zipf-like frequencies) to train the BPE tokenizer on.

    Only ``random.random()`` is used, whose sequence is stable across Python versions.
    """
    import random

    rng = random.Random(seed)
    consonants, vowels = "bcdfghjklmnprstvwz", "aeiou"
    lexicon = []
    for _ in range(20_000):
        syllables = 1 + int(rng.random() * 4)
        lexicon.append(
            "".join(
                consonants[int(rng.random() * len(consonants))] + vowels[int(rng.random() * len(vowels))]
                for _ in range(syllables)
            )
        )
    lines, line = [], []
    for _ in range(num_words):
        line.append(lexicon[int(len(lexicon) * rng.random() ** 3)])
        if len(line) >= 12:
            lines.append(" ".join(line) + ".")
            line = []
    return lines


@dataclass(frozen=True)
class TokenizerLayout:
    """Where :func:`build_tokenizer` put the tokens: the vocabulary size, the special tokens by id and the id range
    of the trained tokens."""

    vocab_size: int
    specials: Mapping[int, str]  # id -> special token text
    regular_ids: tuple[int, int]  # [first, last] id of the trained tokens (contiguous)


def build_tokenizer(
    vocab_size: int,
    roles: Mapping[str, tuple[int, str]],
    out_dir: Path,
    model_max_length: int,
    append_eos: bool = False,
) -> TokenizerLayout:
    """Train a byte-level BPE tokenizer and lay it out over exactly ``vocab_size`` ids.

    ``roles`` places the special tokens: ``{"bos_token": (id, text), "eos_token": ..., "pad_token": ...}``
    (the pad token defaults to the end-of-sequence token). ``append_eos`` ends every encoded text with
    the end-of-sequence token (text encoders such as CLIP pool at that token).
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    specials = dict(roles.values())

    if any(i < 0 or i >= vocab_size for i in specials):
        raise ConfigError(f"special token ids {sorted(specials)} fall outside a vocabulary of {vocab_size}")
    free = [i for i in range(vocab_size) if i not in specials]
    trained = min(MAX_TRAINED_TOKENS, len(free))
    if trained < 300:
        raise ConfigError(f"vocabulary of {vocab_size} is too small for a byte-level tokenizer (needs >= 300)")

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=trained,
        min_frequency=1,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(synthetic_corpus(), trainer=trainer)
    learned = json.loads(tok.to_str())
    learned_vocab = sorted(learned["model"]["vocab"].items(), key=lambda kv: kv[1])
    if len(learned_vocab) != trained:
        raise RuntimeError(f"tokenizer training produced {len(learned_vocab)} tokens, wanted {trained}")

    vocab: dict[str, int] = {}
    regular = iter(token for token, _ in learned_vocab)
    regular_ids = []
    for i in range(vocab_size):
        if i in specials:
            vocab[specials[i]] = i
            continue
        token = next(regular, None)
        if token is None:
            token = f"<|reserved_{i}|>"
        else:
            regular_ids.append(i)
        vocab[token] = i
    if regular_ids != list(range(regular_ids[0], regular_ids[-1] + 1)):
        raise ConfigError(f"special token ids {sorted(specials)} split the trained tokens; put them at the ends")

    merges = cast(
        list[tuple[str, str]],  # a BPE merge is a pair of tokens
        [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in learned["model"]["merges"]],
    )
    final = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    final.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    final.decoder = decoders.ByteLevel()
    final.add_special_tokens([AddedToken(specials[i], special=True, normalized=False) for i in sorted(specials)])
    if append_eos:
        eos_id, eos = roles["eos_token"]
        final.post_processor = processors.TemplateProcessing(
            single=f"$A {eos}", pair=f"$A {eos} $B {eos}", special_tokens=[(eos, eos_id)]
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    final.save(str(out_dir / "tokenizer.json"))
    names_by_role = {role: text for role, (_, text) in roles.items() if role in TOKEN_ROLES}
    names_by_role.setdefault("pad_token", names_by_role["eos_token"])
    (out_dir / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "model_max_length": model_max_length,
                "clean_up_tokenization_spaces": False,
                **names_by_role,
            },
            indent=2,
        )
        + "\n"
    )
    (out_dir / "special_tokens_map.json").write_text(json.dumps(names_by_role, indent=2) + "\n")
    return TokenizerLayout(vocab_size, MappingProxyType(dict(specials)), (regular_ids[0], regular_ids[-1]))
