"""Tasks, as the reference names them, with their families, human names and output units."""

from __future__ import annotations

# The reference's seven tasks (ML.ENERGY Leaderboard v3), language models first.
LLM_TASKS: tuple[str, ...] = ("lm-arena-chat", "gpqa", "sourcegraph-fim", "image-chat", "video-chat")
DIFFUSION_TASKS: tuple[str, ...] = ("text-to-image", "text-to-video")
TASKS: tuple[str, ...] = LLM_TASKS + DIFFUSION_TASKS

# Language-model tasks whose prompts are text alone: the ones the harness's own backends drive.
TEXT_LLM_TASKS: tuple[str, ...] = ("lm-arena-chat", "gpqa", "sourcegraph-fim")
# The harness's own CPU check task (a spin loop, no model): request-driven like an LLM task.
CPU_TRIVIAL = "cpu-trivial"
# Language-model tasks whose prompts carry images or a clip's frames (the vLLM backend's chat requests).
MULTIMODAL_LLM_TASKS: tuple[str, ...] = ("image-chat", "video-chat")
# Tasks driven by requests with the ``max_num_seqs`` knob (a study's LLM blocks).
REQUEST_TASKS: tuple[str, ...] = TEXT_LLM_TASKS + MULTIMODAL_LLM_TASKS + (CPU_TRIVIAL,)
# Reference tasks a study cannot run yet.
NOT_RUNNABLE: tuple[str, ...] = ()

# A runnable task's family (the folder-and-chapter name of its kind of work).
FAMILIES: dict[str, str] = {
    "lm-arena-chat": "llm-chat",
    "gpqa": "llm-reasoning",
    "sourcegraph-fim": "llm-code",
    "image-chat": "llm-image-chat",
    "video-chat": "llm-video-chat",
    "text-to-image": "text-to-image",
    "text-to-video": "text-to-video",
    CPU_TRIVIAL: CPU_TRIVIAL,
}

# What a reader sees for each task.
TASK_NAMES: dict[str, str] = {
    "lm-arena-chat": "Text conversation",
    "gpqa": "Problem solving (reasoning)",
    "sourcegraph-fim": "Code completion",
    "image-chat": "Image chat",
    "video-chat": "Video chat",
    "text-to-image": "Text to image",
    "text-to-video": "Text to video",
}

# The unit one request of a task produces (energy per output is per this unit).
OUTPUT_UNIT: dict[str, str] = dict.fromkeys(LLM_TASKS, "response") | {
    "text-to-image": "image",
    "text-to-video": "video",
}
