"""Image chat and video chat requests: synthetic images and clips sent through the OpenAI chat API.

Each request is one user message: its media first, as base64 data URLs (``image_url`` parts), then the text
of the question (the drawn prompt length, as text from the served model's tokenizer). The media are
synthetic and seeded (smooth colour fields with noise, so that an encoder sees neither a blank nor a
constant image; JPEG-encoded, as photos are), of the sizes and counts in :class:`MediaShape`:

* ``image-chat`` (VisionArena chat in the reference): ``images_per_request`` images of ``image_size``;
* ``video-chat`` (LLaVA-Video-178K in the reference): one clip of ``video_frames`` frames of ``frame_size``,
  sent as its frames (``image_url`` parts, in order), not as a video file: the vLLM CPU engine's venv has
  no torchvision, without which transformers' video processors do not load, and the tiny architecture the
  CPU host serves (Idefics3) takes images only. The clip's decoding is therefore not part of the measured
  serving; its frames' preprocessing and encoding are.

The reference publishes no media shapes; the defaults (:data:`DEFAULT_SHAPES`) are stated assumptions
about its datasets, recorded with every run, and options override them.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from harness.errors import ConfigError
from harness.vocabulary.tasks import MULTIMODAL_LLM_TASKS

MULTIMODAL_TASKS = MULTIMODAL_LLM_TASKS


@dataclass(frozen=True)
class MediaShape:
    """What one request carries: ``images`` pictures (the frames of one clip for video) of ``width`` x ``height``
    pixels."""

    images: int
    width: int
    height: int
    as_frames_of_a_clip: bool  # video chat: the images are one clip's frames, in order

    def as_info(self) -> dict:
        """The shape as run.json records it."""
        return asdict(self)


# Assumed shapes (the reference publishes none): one photo-sized image per VisionArena question; a LLaVA-Video
# clip sampled at 16 frames of 640x360.
DEFAULT_SHAPES: dict[str, MediaShape] = {
    "image-chat": MediaShape(1, 1024, 768, False),
    "video-chat": MediaShape(16, 640, 360, True),
}


def parse_size(text: str, option: str) -> tuple[int, int]:
    """``"WxH"`` as ``(width, height)`` in pixels; one-line :class:`ConfigError` otherwise."""
    try:
        width, height = (int(part) for part in str(text).lower().split("x"))
    except ValueError:
        raise ConfigError(f"options.{option} must be WIDTHxHEIGHT in pixels, e.g. 640x360, not {text!r}") from None
    if not (8 <= width <= 8192 and 8 <= height <= 8192):
        raise ConfigError(f"options.{option} {text!r}: each side must be 8 to 8192 pixels")
    return width, height


def media_shape(task: str, opts: Mapping[str, Any]) -> MediaShape:
    """The media of one request of ``task`` from the backend's options (``images_per_request`` and
    ``image_size`` for image chat, ``video_frames`` and ``frame_size`` for video chat; None: the default)."""
    base = DEFAULT_SHAPES[task]
    if task == "image-chat":
        count, size = opts.get("images_per_request"), opts.get("image_size")
    else:
        count, size = opts.get("video_frames"), opts.get("frame_size")
    width, height = (
        parse_size(size, "image_size" if task == "image-chat" else "frame_size") if size else (base.width, base.height)
    )
    count = base.images if count is None else int(count)
    if count < 1:
        raise ConfigError(f"a {task} request needs at least one image or frame, not {count}")
    return MediaShape(count, width, height, base.as_frames_of_a_clip)


def synthetic_images(shape: MediaShape, seed: int) -> list[bytes]:
    """``shape.images`` seeded JPEG images (a clip's frames drift smoothly from one to the next)."""
    from PIL import Image

    rng = np.random.default_rng([seed, 7])
    ys, xs = np.mgrid[0 : shape.height, 0 : shape.width].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, size=3)
    out = []
    for frame in range(shape.images):
        shift = frame * 0.15 if shape.as_frames_of_a_clip else rng.uniform(0, 6)
        channels = [127 + 100 * np.sin(xs / (23 + 7 * c) + ys / (31 + 5 * c) + phase[c] + shift) for c in range(3)]
        pixels = np.stack(channels, axis=-1) + rng.normal(0, 12, size=(shape.height, shape.width, 3))
        buffer = io.BytesIO()
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB").save(buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def data_url(jpeg: bytes) -> str:
    """A JPEG as a ``data:image/jpeg;base64,...`` URL."""
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


@dataclass(frozen=True)
class ChatLoad:
    """The chat requests of a multimodal run: one text and one media set per request, and the forced output
    lengths in tokens."""

    model: str  # served model name
    texts: Sequence[str]
    media: Sequence[Sequence[str]]  # data URLs per request
    output_tokens: Sequence[int]
    temperature: float = 1.0


def chat_request(load: ChatLoad) -> Callable[[int], tuple[str, dict]]:
    """Request ``i`` of ``load`` as (path, JSON body) for :class:`harness.workloads.loadgen.LoadSpec`: the chat
    endpoint, media parts then the text, its output length forced as the completions requests force theirs."""

    def build(i: int) -> tuple[str, dict]:
        n = int(load.output_tokens[i])
        content: list[dict] = [{"type": "image_url", "image_url": {"url": url}} for url in load.media[i]]
        content.append({"type": "text", "text": load.texts[i]})
        return "/v1/chat/completions", {
            "model": load.model,
            "messages": [{"role": "user", "content": content}],
            "max_tokens": n,
            "min_tokens": n,
            "ignore_eos": True,
            "temperature": load.temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
            "return_token_ids": True,
        }

    return build


def media_for_requests(shape: MediaShape, num_requests: int, seed: int, distinct: int = 64) -> list[list[str]]:
    """Data URLs per request: up to ``distinct`` seeded media sets, reused in turn beyond that (the client's
    memory stays bounded). The server is started with its multimodal preprocessing cache off
    (:data:`SERVER_ARGS`), so a repeated set is preprocessed again like a new one."""
    count = min(distinct, num_requests)
    sets = [[data_url(jpeg) for jpeg in synthetic_images(shape, seed * 1000 + k)] for k in range(count)]
    return [sets[i % len(sets)] for i in range(num_requests)]


def server_args(shape: MediaShape) -> list[str]:
    """vLLM flags of a multimodal run: room for the request's images, preprocessing cache off."""
    return ["--limit-mm-per-prompt", f'{{"image": {shape.images}}}', *SERVER_ARGS]


SERVER_ARGS = ("--mm-processor-cache-gb", "0")
