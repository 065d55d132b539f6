"""The book's one visual system: a fixed colour per model, per task and per GPU generation, and the line styles
and marker shapes for GPU count and precision. Every chart takes its colours from here, so a model is drawn in
the same colour on every page.

* :data:`MODEL_COLOURS` -- the 46 published models by their human names. Models that share a task got colours
  far apart (CIELAB distance), so any one task's chart tells its models apart; an FP8 variant is a darker shade
  of its BF16 model. A model the table does not name (an own run, a new model) gets a colour of
  :data:`FALLBACK_COLOURS` chosen by a stable hash of its name, so it too keeps one colour everywhere.
* :data:`TASK_COLOURS` -- by task id and by the task's human name (:data:`~harness.vocabulary.tasks.TASK_NAMES`).
* :data:`GPU_COLOURS` -- by GPU generation; :data:`OUTPUT_UNIT_COLOURS` -- a response, an image, a video.
* :data:`GPU_COUNT_DASHES`, :data:`PRECISION_DASHES`, :data:`GPU_COUNT_SHAPES`, :data:`PRECISION_SHAPES` -- what
  tells the series of one model apart: a line's dash pattern, a point's shape.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable

from harness.vocabulary.tasks import TASK_NAMES

# The published models (ML.ENERGY Leaderboard v3), grouped by the task that assigned their colour.
MODEL_COLOURS: dict[str, str] = {
    # text conversation
    "DeepSeek V3.1": "#a91e5c",
    "Gemma 3 12B": "#41c35c",
    "Gemma 3 27B": "#18b6fa",
    "Llama 3.1 405B Instruct": "#ea9a28",
    "Llama 3.1 405B Instruct FP8": "#b57205",
    "Llama 3.1 70B Instruct": "#4c4abd",
    "Llama 3.1 8B Instruct": "#466210",
    "Llama 3.3 70B Instruct": "#ec83f7",
    "Llama 4 Maverick 17B 128E Instruct FP8": "#fc6450",
    "Llama 4 Scout 17B 16E Instruct": "#a7b41f",
    "NVIDIA Nemotron Nano 12B V2": "#18a984",
    "NVIDIA Nemotron Nano 9B V2": "#fb899c",
    "Qwen 3 14B": "#aea0f3",
    "Qwen 3 235B A22B Instruct": "#f859b1",
    "Qwen 3 235B A22B Instruct FP8": "#c03484",
    "Qwen 3 30B A3B Instruct": "#9b3a12",
    "Qwen 3 32B": "#902b9d",
    "Qwen 3 8B": "#3779c5",
    # problem solving (reasoning)
    "DeepSeek R1": "#d6a419",
    "GPT OSS 120B": "#328807",
    "GPT OSS 20B": "#cb4f1c",
    "Qwen 3 235B A22B Thinking": "#725501",
    "Qwen 3 235B A22B Thinking FP8": "#433208",
    "Qwen 3 30B A3B Thinking": "#f485d7",
    # image chat and video chat
    "NVIDIA Nemotron Nano 12B V2 VL": "#a31489",
    "Qwen 3 Omni 30B A3B Instruct": "#7e4f0a",
    "Qwen 3 VL 235B A22B Instruct": "#2c72e9",
    "Qwen 3 VL 235B A22B Instruct FP8": "#1d4ca0",
    "Qwen 3 VL 30B A3B Instruct": "#19672b",
    "Qwen 3 VL 32B Instruct": "#f18bbe",
    "Qwen 3 VL 8B Instruct": "#ab1f49",
    # code completion
    "Qwen 3 Coder 30B A3B": "#fe8d5f",
    "Qwen 3 Coder 480B A35B": "#3898fc",
    "Qwen 3 Coder 480B A35B FP8": "#316fb5",
    # text to image
    "FLUX.1 Dev": "#a79725",
    "Hunyuan-DiT 1.2": "#743caf",
    "PixArt-Σ": "#dc364b",
    "SANA 1.5 1.6B": "#52b2fe",
    "SANA 1.5 4.8B": "#3bc098",
    "Stable Diffusion 3.5 Large": "#e37a24",
    "Stable Diffusion 3.5 Medium": "#226702",
    # text to video
    "CogVideoX 1.5 5B": "#a3236e",
    "CogVideoX 2B": "#6cbf45",
    "HunyuanVideo": "#fc8f3a",
    "Wan 2.1 1.3B": "#329de7",
    "Wan 2.1 14B": "#ca94fa",
}

_TASK_ID_COLOURS: dict[str, str] = {
    "lm-arena-chat": "#4c78a8",
    "gpqa": "#e45756",
    "sourcegraph-fim": "#54a24b",
    "image-chat": "#b279a2",
    "video-chat": "#9d755d",
    "text-to-image": "#f58518",
    "text-to-video": "#72b7b2",
}
# By task id and by the task's human name: a legend shows either.
TASK_COLOURS: dict[str, str] = _TASK_ID_COLOURS | {TASK_NAMES[t]: c for t, c in _TASK_ID_COLOURS.items()}

# Families of work, as some tables name them (language models, images, videos).
FAMILY_COLOURS: dict[str, str] = {
    "llm": "#4c78a8",
    "Language models": "#4c78a8",
    "text-to-image": "#f58518",
    "Text to image": "#f58518",
    "text-to-video": "#72b7b2",
    "Text to video": "#72b7b2",
}

# What one output is (a response, an image, a video): the colours of the kinds of work they stand for.
OUTPUT_UNIT_COLOURS: dict[str, str] = {"response": "#4c78a8", "image": "#f58518", "video": "#72b7b2"}

GPU_COLOURS: dict[str, str] = {"H100": "#e6550d", "B200": "#3182bd", "H200": "#17becf", "A100": "#7f7f7f"}

# Several GPUs, or another precision, of one model: the dash of its line and the shape of its points.
GPU_COUNT_DASHES: dict[int, list[float]] = {1: [1, 0], 2: [6, 3], 4: [2, 2], 8: [8, 3, 2, 3]}
GPU_COUNT_SHAPES: dict[int, str] = {1: "circle", 2: "square", 4: "triangle-up", 8: "diamond"}
# by the precision's internal name and by the reader's (lower case): bfloat16 and bf16 alike
PRECISION_DASHES: dict[str, list[float]] = {
    "bfloat16": [1, 0],
    "bf16": [1, 0],
    "float16": [1, 0],
    "fp16": [1, 0],
    "fp8": [5, 3],
    "mxfp4": [2, 2],
}
PRECISION_SHAPES: dict[str, str] = {
    "bfloat16": "circle",
    "bf16": "circle",
    "float16": "circle",
    "fp16": "circle",
    "fp8": "triangle-up",
    "mxfp4": "square",
}

# For names none of the tables above knows, chosen by a stable hash of the name.
FALLBACK_COLOURS: tuple[str, ...] = (
    "#4c78a8",
    "#f58518",
    "#e45756",
    "#72b7b2",
    "#54a24b",
    "#eeca3b",
    "#b279a2",
    "#ff9da6",
    "#9d755d",
    "#7f7f7f",
)

_TABLES = (MODEL_COLOURS, TASK_COLOURS, GPU_COLOURS, FAMILY_COLOURS, OUTPUT_UNIT_COLOURS)


def _key(name: str) -> str:
    """A name reduced for matching: ``Qwen3-8B (own)`` and ``Qwen 3 8B`` both become ``qwen38b``."""
    name = re.sub(r"\s*\(own\)\s*$", "", name)
    return re.sub(r"[\s_\-.]+", "", name).lower()


_BY_KEY: dict[str, str] = {_key(n): c for table in _TABLES for n, c in table.items()}


def known_colour(name: str) -> str | None:
    """The fixed colour of a model, task, family or GPU generation (own runs as their model), or None."""
    for table in _TABLES:
        if name in table:
            return table[name]
    found = _BY_KEY.get(_key(name))
    return found if found is not None else series_colour(name)


# A series label of the own-runs chapter: "<model> (own), <task>, <GPUs>" or "<model> (published), <task>, <GPUs>".
_SERIES = re.compile(r"^(?P<model>.+?) \((?:own|published)[^)]*\)(?:, (?P<task>[^,]+))?")
# a task's shade: its place among the tasks one model serves (text, multimodal or diffusion), the first unshaded
_TASK_GROUPS = (
    ("lm-arena-chat", "gpqa", "sourcegraph-fim"),
    ("image-chat", "video-chat"),
    ("text-to-image", "text-to-video"),
)
_TASK_ORDER = {TASK_NAMES[t].lower(): i for group in _TASK_GROUPS for i, t in enumerate(group)}


def _mix(hex_colour: str, towards: int, share: float) -> str:
    """``hex_colour`` moved ``share`` (0-1) of the way to black (``towards`` 0) or white (255)."""
    rgb = [int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c + (towards - c) * share):02x}" for c in rgb)


def series_colour(name: str) -> str | None:
    """The colour of a run series labelled ``<model> (own|published), <task>, <GPUs>``: its model's colour (a stable
    fallback for a model no table names), shaded by the task (its place among the tasks
    one model serves: text chat, reasoning and code completion; image and video chat; image and video generation;
    none for the first, then darker, then lighter), so that one
    label has one colour on every page and one model's series of several tasks differ in one chart. None for any
    other name."""
    found = _SERIES.match(name)
    if not found:
        return None
    model = found.group("model")
    base = known_colour(model) or FALLBACK_COLOURS[zlib.crc32(model.encode("utf-8")) % len(FALLBACK_COLOURS)]
    index = _TASK_ORDER.get((found.group("task") or "").strip().lower(), 0)
    if index == 0:
        return base
    return _mix(base, 0 if index % 2 else 255, 0.3)


def colour(name: str) -> str:
    """The colour of ``name`` on every page: its fixed colour, else a stable one of :data:`FALLBACK_COLOURS`."""
    found = known_colour(name)
    if found is not None:
        return found
    return FALLBACK_COLOURS[zlib.crc32(name.encode("utf-8")) % len(FALLBACK_COLOURS)]


def colours(names: Iterable[str]) -> list[str]:
    """The colours of ``names``, in order, for one chart (see :func:`colour`).

    Names the tables know keep their fixed colours. Two unknown names whose hashes pick the same fallback colour
    would look alike in this chart: the later one takes the next fallback colour not yet used here."""
    names = [str(n) for n in names]
    out = [known_colour(n) for n in names]
    used = {c for c in out if c is not None}
    for i, name in enumerate(names):
        if out[i] is not None:
            continue
        start = zlib.crc32(name.encode("utf-8")) % len(FALLBACK_COLOURS)
        for step in range(len(FALLBACK_COLOURS)):
            candidate = FALLBACK_COLOURS[(start + step) % len(FALLBACK_COLOURS)]
            if candidate not in used:
                break
        else:
            candidate = FALLBACK_COLOURS[start]
        out[i] = candidate
        used.add(candidate)
    return [c for c in out if c is not None]
