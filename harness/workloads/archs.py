"""Named model architectures that the project writes itself: nothing is downloaded.

Each architecture is one JSON file in ``harness/archs/``:

* ``kind: "llm"`` -- an ``hf_config`` (a Hugging Face ``config.json``) and a
  tokenizer spec. :func:`materialize_llm` writes a model folder with that
  ``config.json`` and a byte-level BPE tokenizer trained from scratch on a
  seeded synthetic corpus (:mod:`harness.workloads.synthetic_tokenizer`), which
  vLLM loads with ``--load-format dummy`` and transformers builds with random weights.
* ``kind: "diffusion"`` -- a diffusers pipeline class and one config per
  component (transformer, VAE, text encoders, scheduler, tokenizers);
  :mod:`harness.workloads.diffusers_backend` builds it with random weights.

The tokenizer's vocabulary has exactly the model's ``vocab_size`` entries: the
trained tokens first (at most 8,192), the special tokens at the ids the model
config names, and reserved placeholder tokens for the rest (as Llama 3 does
with its reserved special tokens), so every id a random-weight model can emit
decodes. Generated folders live in a cache (``HARNESS_CACHE_DIR``, else
``~/.cache/joules-study/models``) under a name that carries a digest of the
architecture file and of the tokenizer recipe, so they are rebuilt whenever
either changes and never committed.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from harness.errors import ConfigError
from harness.workloads.synthetic_tokenizer import (  # noqa: F401 (re-exported: the tokenizer was defined here)
    MAX_TRAINED_TOKENS,
    TOKEN_ROLES,
    TOKENIZER_RECIPE,
    TokenizerLayout,
    build_tokenizer,
    synthetic_corpus,
)

ARCH_DIR = Path(__file__).resolve().parent.parent / "archs"
CACHE_ENV = "HARNESS_CACHE_DIR"
LLM_BACKENDS = ("vllm", "transformers")
DIFFUSION_BACKENDS = ("diffusers",)


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class Arch:
    """One architecture file, read-only."""

    name: str
    kind: str  # "llm" | "diffusion"
    description: str
    spec: Mapping[str, Any]  # the whole file, frozen
    digest: str  # sha256 (12 hex) of the file's canonical JSON plus the tokenizer recipe

    @property
    def task(self) -> str | None:
        """The diffusion task this pipeline serves (``None`` for LLMs, which serve every LLM task)."""
        return self.spec.get("task")

    @property
    def backends(self) -> tuple[str, ...]:
        """The backends that build this architecture (LLM or diffusion ones)."""
        return LLM_BACKENDS if self.kind == "llm" else DIFFUSION_BACKENDS

    @property
    def is_tiny(self) -> bool:
        """True for the tiny architectures written for a CPU (``tiny-*``)."""
        return self.name.startswith("tiny-")

    def hf_config(self) -> dict:
        """The LLM's ``config.json`` as a fresh dict."""
        if self.kind != "llm":
            raise ConfigError(f"architecture {self.name!r} is a diffusion pipeline, not an LLM")
        return _thaw(self.spec["hf_config"])

    def reference_model(self, task: str) -> str | None:
        """Published model id with the same architecture (for reference curves), if any."""
        return self.spec.get("reference_models", {}).get(task)

    def length_source(self, task: str) -> str | None:
        """Default published model whose output-length histogram this architecture draws from on ``task``."""
        return self.spec.get("length_sources", {}).get(task) or self.reference_model(task)

    def as_dict(self) -> dict:
        """The whole architecture file as fresh, mutable dicts and lists."""
        return _thaw(self.spec)


def text_config(hf_config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The language model's part of an LLM's ``config.json``: its ``text_config`` for a vision-language model
    (Qwen3-VL and its kin), else the config itself."""
    return hf_config.get("text_config") or hf_config


def _check(name: str, spec: dict, path: Path) -> None:
    if spec.get("name") != name:
        raise ConfigError(f"architecture file {path} names itself {spec.get('name')!r}, expected {name!r}")
    kind = spec.get("kind")
    if kind == "llm":
        cfg = spec.get("hf_config", {})
        if not cfg.get("architectures"):
            raise ConfigError(f"architecture file {path}: hf_config needs an 'architectures' entry")
        if spec.get("tokenizer", {}).get("vocab_size") != text_config(cfg).get("vocab_size"):
            raise ConfigError(f"architecture file {path}: tokenizer.vocab_size must equal hf_config.vocab_size")
    elif kind == "diffusion":
        if spec.get("task") not in ("text-to-image", "text-to-video"):
            raise ConfigError(f"architecture file {path}: task must be text-to-image or text-to-video")
        if "transformer" not in spec.get("components", {}):
            raise ConfigError(f"architecture file {path}: components need a transformer")
    else:
        raise ConfigError(f"architecture file {path}: kind must be 'llm' or 'diffusion', not {kind!r}")


@functools.lru_cache(maxsize=1)
def _load_all() -> dict[str, Arch]:
    out = {}
    for path in sorted(ARCH_DIR.glob("*.json")):
        name = path.stem
        try:
            spec = json.loads(path.read_text())
        except ValueError as exc:
            raise ConfigError(f"architecture file {path} is not valid JSON: {exc}") from None
        _check(name, spec, path)
        canonical = json.dumps(spec, sort_keys=True, separators=(",", ":")) + TOKENIZER_RECIPE
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:12]
        out[name] = Arch(name, spec["kind"], spec.get("description", ""), _freeze(spec), digest)
    return out


def all_archs() -> dict[str, Arch]:
    """Every architecture file, by name."""
    return dict(_load_all())


def names(backend: str | None = None) -> tuple[str, ...]:
    """Architecture names a backend can build (all of them when ``backend`` is None)."""
    archs = _load_all().values()
    return tuple(a.name for a in archs if backend is None or backend in a.backends)


def get(name: str) -> Arch:
    """The architecture ``name``; an unknown name is a one-line ConfigError listing the known ones."""
    archs = _load_all()
    if name not in archs:
        raise ConfigError(f"unknown architecture {name!r} (known: {', '.join(sorted(archs))})")
    return archs[name]


def cache_root() -> Path:
    """Where generated model folders go."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser() / "models"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "joules-study" / "models"


# --- tokenizer (built by harness.workloads.synthetic_tokenizer) ---------------------------------


def _layout_specials(arch: Arch) -> dict[str, tuple[int, str]]:
    """Special tokens by role: ``{"bos_token": (id, text), ...}``."""
    tok = arch.spec.get("tokenizer", {})
    if arch.kind == "llm":
        cfg = text_config(arch.spec["hf_config"])
        roles = {
            "bos_token": (int(cfg["bos_token_id"]), tok["bos_token"]),
            "eos_token": (int(cfg["eos_token_id"]), tok["eos_token"]),
        }
        # further special tokens by text: a code model's FIM tokens, a vision model's image and video tokens
        return roles | {text: (int(i), text) for text, i in tok.get("special_tokens", {}).items()}
    return {"bos_token": (0, "<|bos|>"), "eos_token": (1, "<|eos|>"), "pad_token": (2, "<|pad|>")}


# --- materialised folders ------------------------------------------------------------------------


def _materialize(arch: Arch, fill) -> Path:
    root = cache_root()
    final = root / f"{arch.name}-{arch.digest}"
    if (final / "harness_arch.json").is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{arch.name}-", dir=root))
    try:
        layout = fill(tmp)
        stamp = {
            "name": arch.name,
            "digest": arch.digest,
            "tokenizer_recipe": TOKENIZER_RECIPE,
            "vocab_size": layout.vocab_size,
            "special_token_ids": sorted(layout.specials),
            "regular_token_ids": list(layout.regular_ids),
            "tokenizer_sha256": hashlib.sha256((tmp / "tokenizer.json").read_bytes()).hexdigest(),
        }
        (tmp / "harness_arch.json").write_text(json.dumps(stamp, indent=2) + "\n")
        try:
            os.replace(tmp, final)
        except OSError:  # another process finished first: use its copy
            if not (final / "harness_arch.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _transformers_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("transformers")
    except PackageNotFoundError:
        return "5.0.0"


def materialize_llm(name: str) -> Path:
    """A model folder for ``name``: ``config.json`` plus tokenizer files (no weights)."""
    arch = get(name)
    if arch.kind != "llm":
        raise ConfigError(f"architecture {name!r} is a diffusion pipeline, not an LLM")

    def fill(folder: Path) -> TokenizerLayout:
        cfg = arch.hf_config()
        cfg.setdefault("transformers_version", _transformers_version())  # else transformers 5 warns about a regex
        (folder / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
        for file_name, content in _thaw(arch.spec.get("files", {})).items():  # processor configs, a chat template
            text = content if isinstance(content, str) else json.dumps(content, indent=2) + "\n"
            (folder / file_name).write_text(text)
        llm = text_config(cfg)  # a vision-language config holds its language model's numbers in a sub-config
        max_len = int(llm.get("max_position_embeddings", 4096))
        return build_tokenizer(int(llm["vocab_size"]), _layout_specials(arch), folder, max_len)

    return _materialize(arch, fill)


def materialize_tokenizer(name: str) -> Path:
    """The tokenizer folder a diffusion pipeline's text encoders share."""
    arch = get(name)
    if arch.kind != "diffusion":
        return materialize_llm(name)

    def fill(folder: Path) -> TokenizerLayout:
        return build_tokenizer(
            int(arch.spec["tokenizer"]["vocab_size"]), _layout_specials(arch), folder, 77, append_eos=True
        )

    return _materialize(arch, fill)


def folder_info(folder: Path) -> dict:
    """The stamp a materialised folder carries (vocabulary layout, tokenizer digest)."""
    return json.loads((Path(folder) / "harness_arch.json").read_text())


# --- the folder an LLM backend serves: generated (dummy weights) or a local folder with real weights -------


@dataclass(frozen=True)
class ModelFolder:
    path: Path
    hf_config: Mapping[str, Any]
    regular_ids: tuple[int, int]  # prompt token ids are drawn from this range (no special tokens)
    bos_token_id: int | None
    dummy: bool  # True: no weights in the folder (vLLM --load-format dummy, transformers random init)
    weights: str  # what the run records
    digest: str
    tokenizer_sha256: str | None


def _largest_gap(specials: list[int], vocab: int) -> tuple[int, int]:
    """The longest run of ids in [0, vocab) that holds no special token."""
    bounds = [-1, *sorted(i for i in set(specials) if 0 <= i < vocab), vocab]
    lo, hi = max(itertools.pairwise(bounds), key=lambda ab: ab[1] - ab[0])
    return lo + 1, hi - 1


HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def hub_snapshot(repo_id: str) -> Path:
    """The local folder of Hugging Face model ``repo_id``: from the local Hugging Face cache, else downloaded
    (unless ``HF_HUB_OFFLINE`` is set); one-line :class:`ConfigError` when neither works."""
    import os

    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception as cached_exc:  # noqa: BLE001 -- not in the cache
        if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
            raise ConfigError(
                f"weights {repo_id!r}: not in the local Hugging Face cache and HF_HUB_OFFLINE is set "
                f"({type(cached_exc).__name__})"
            ) from None
    try:
        return Path(snapshot_download(repo_id))
    except Exception as exc:  # noqa: BLE001 -- no network, unknown or gated repository
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise ConfigError(
            f"weights {repo_id!r}: neither a local folder nor a Hugging Face model that can be "
            f"downloaded here ({type(exc).__name__}: {first})"
        ) from None


def llm_folder(name: str, weights: str | None = None) -> ModelFolder:
    """The model folder for architecture ``name``; with ``weights`` (a local Hugging Face model folder, e.g. a
    downloaded checkpoint), that folder with its own config, tokenizer and real weights instead."""
    if weights is None:
        path = materialize_llm(name)
        stamp = folder_info(path)
        cfg = get(name).hf_config()
        return ModelFolder(
            path,
            MappingProxyType(cfg),
            tuple(stamp["regular_token_ids"]),
            cfg.get("bos_token_id"),
            True,
            "dummy (random; no weights are loaded)",
            stamp["digest"],
            stamp["tokenizer_sha256"],
        )
    path = Path(weights).expanduser()
    if not path.exists() and HF_ID.fullmatch(str(weights)):
        path = hub_snapshot(str(weights))
    if not (path / "config.json").is_file():
        raise ConfigError(f"weights folder {path} has no config.json (a local Hugging Face model folder is needed)")
    from transformers import AutoTokenizer

    cfg = json.loads((path / "config.json").read_text())
    tok = AutoTokenizer.from_pretrained(str(path))
    vocab = min(int(cfg.get("vocab_size") or len(tok)), len(tok))
    tok_file = path / "tokenizer.json"
    return ModelFolder(
        path,
        MappingProxyType(cfg),
        _largest_gap(list(tok.all_special_ids), vocab),
        tok.bos_token_id,
        False,
        f"real weights from {path}",
        hashlib.sha256((path / "config.json").read_bytes()).hexdigest()[:12],
        hashlib.sha256(tok_file.read_bytes()).hexdigest() if tok_file.is_file() else None,
    )


# --- Model facts for the preflight (harness.orchestration.preflight) -------------------------------------


@dataclass(frozen=True)
class LLMFacts:
    """What sharding and memory checks need from an LLM's ``config.json``."""

    parameters: int
    num_attention_heads: int
    num_key_value_heads: int
    num_experts: int  # 0 for a dense model
    num_hidden_layers: int
    expert_parameters: int = 0  # of ``parameters``, those in the experts (sharded by expert parallelism)


def llm_facts_from_config(cfg: Mapping[str, Any]) -> LLMFacts:
    """Parameter count and head/expert counts of a Llama- or Qwen3-style decoder (dense or mixture of experts).

    Counted the way transformers builds the model: embeddings, per layer the q/k/v/o projections (biases
    with ``attention_bias``; Qwen3's per-head q/k norms), the MLP (SwiGLU: gate, up, down) or, on sparse
    layers, the router and ``num_experts`` SwiGLU experts of ``moe_intermediate_size``, two norms per layer,
    the final norm and the output head unless tied to the embeddings.
    """
    cfg = text_config(cfg)  # a vision-language model: its language model (the vision tower is not counted)
    hidden, vocab = int(cfg["hidden_size"]), int(cfg["vocab_size"])
    layers = int(cfg["num_hidden_layers"])
    heads = int(cfg["num_attention_heads"])
    kv_heads = int(cfg.get("num_key_value_heads") or heads)
    head_dim = int(cfg.get("head_dim") or hidden // heads)
    bias = bool(cfg.get("attention_bias"))
    attention = hidden * head_dim * (heads + 2 * kv_heads) + heads * head_dim * hidden
    if bias:
        attention += head_dim * (heads + 2 * kv_heads) + hidden
    model_type = str(cfg.get("model_type", ""))
    if model_type.startswith("qwen3"):
        attention += 2 * head_dim  # q_norm, k_norm
    experts = int(cfg.get("num_experts") or cfg.get("num_local_experts") or 0)
    dense_mlp = 3 * hidden * int(cfg["intermediate_size"]) + (
        (2 * int(cfg["intermediate_size"]) + hidden) if cfg.get("mlp_bias") else 0
    )
    total = vocab * hidden + hidden  # embeddings, final norm
    if not cfg.get("tie_word_embeddings"):
        total += vocab * hidden
    step = int(cfg.get("decoder_sparse_step") or 1)
    dense_only = set(cfg.get("mlp_only_layers") or ())
    in_experts = 0
    for layer in range(layers):
        sparse = experts > 0 and layer not in dense_only and (layer + 1) % step == 0
        expert_weights = experts * 3 * hidden * int(cfg["moe_intermediate_size"]) if sparse else 0
        in_experts += expert_weights
        mlp = (hidden * experts + expert_weights) if sparse else dense_mlp
        total += attention + mlp + 2 * hidden
    return LLMFacts(total, heads, kv_heads, experts, layers, in_experts)


def llm_facts(name: str) -> LLMFacts:
    """:func:`llm_facts_from_config` of a named LLM architecture."""
    return llm_facts_from_config(get(name).hf_config())
