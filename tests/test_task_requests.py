"""The request shape of each of the reference's LLM tasks, against the fake vLLM server (tests/fake_vllm.py):
code completion as fill-in-the-middle prompts on the completions endpoint."""

from __future__ import annotations

import json

import pytest

from harness.errors import ConfigError
from harness.workloads import fim


def test_a_fim_prompt_frames_prefix_and_suffix_with_the_models_tokens_and_keeps_its_length():
    ids = (2, 4, 3)  # prefix, suffix, middle
    prompts = [list(range(100, 100 + n)) for n in (5, 40, 300)]
    out = fim.fim_prompt_ids(prompts, ids, seed=0)
    for drawn, prompt in zip(prompts, out, strict=True):
        assert len(prompt) == len(drawn)
        assert prompt[0] == 2 and prompt[-1] == 3 and prompt.count(4) == 1
        cut = prompt.index(4)
        code = len(prompt) - 3
        assert 1 <= cut - 1 <= code - 1  # neither side empty
        if code >= 20:
            assert fim.PREFIX_SHARE[0] - 0.05 <= (cut - 1) / code <= fim.PREFIX_SHARE[1] + 0.05
    assert fim.fim_prompt_ids(prompts, ids, seed=0) == out  # seeded
    assert len(fim.fim_prompt_ids([[9]], ids, seed=0)[0]) == fim.MIN_PROMPT_TOKENS


def test_an_architecture_without_fim_tokens_is_refused_in_one_line(tmp_path):
    from harness.workloads import archs

    with pytest.raises(ConfigError) as err:
        fim.fim_token_ids(archs.materialize_llm("tiny-llama"))
    assert "<|fim_prefix|>" in str(err.value) and "\n" not in str(err.value)
    folder = archs.materialize_llm("tiny-qwen3-moe")
    assert fim.fim_token_ids(folder) == (2, 4, 3)


def _measure(tmp_path, block: str):
    from harness.measuring import store
    from harness.orchestration import runner
    from harness.orchestration.study import load_study

    config = tmp_path / "s.yaml"
    config.write_text("study: shapes\nsettings: {cooldown_s: 0, idle_power_s: 0, sampler_hz: 10}\nruns:\n" + block)
    study = load_study(config)
    counts = runner.measure_study(study, tmp_path / "results", progress=False)
    run_dir = store.run_path(tmp_path / "results", "shapes", study.configurations[0].run_id)
    return counts, json.loads((run_dir / "run.json").read_text())


def _bodies(pids):
    return [json.loads(line) for line in (pids / "bodies.jsonl").read_text().splitlines()]


def test_code_completion_sends_fim_prompts_to_the_completions_endpoint(tmp_path, no_nvml, vllm_env, monkeypatch):
    import fake_vllm

    pids = fake_vllm.use(monkeypatch, tmp_path, {"token_s": 0.002, "record_bodies": True})
    counts, record = _measure(
        tmp_path,
        (
            "  - {task: sourcegraph-fim, backend: vllm, models: [tiny-qwen3-moe], num_requests: 6, seed: 2,\n"
            "     options: {output_length_scale: 0.05, max_prompt_tokens: 64}, grid: {max_num_seqs: [2]}}\n"
        ),
    )
    assert counts == {"ok": 1}, record.get("message")
    bodies = [b for b in _bodies(pids) if b["path"] == "/v1/completions"]
    assert len(bodies) == 6
    prompts = record["backend_info"]["prompts"]
    assert prompts["fim_token_ids"] == [2, 4, 3]
    for b in bodies:
        p = b["body"]["prompt"]
        assert p[0] == 2 and p[-1] == 3 and p.count(4) == 1 and 0 not in p  # no BOS before the prefix token
        assert b["body"]["ignore_eos"] and b["body"]["max_tokens"] == b["body"]["min_tokens"]
    drawn = record["backend_info"]["lengths"]["prompt_tokens"]
    assert sorted(len(b["body"]["prompt"]) for b in bodies) == sorted(drawn)
    assert "Qwen3-Coder" in json.dumps(record["backend_info"]["lengths"])  # the published sourcegraph-fim lengths


@pytest.mark.parametrize(
    "task, options, parts",
    [
        ("image-chat", "{images_per_request: 2, image_size: 96x64}", 2),
        ("video-chat", "{video_frames: 3, frame_size: 48x32}", 3),
    ],
)
def test_image_and_video_chat_send_their_media_as_data_urls_to_the_chat_endpoint(
    tmp_path, no_nvml, vllm_env, monkeypatch, task, options, parts
):
    import base64
    import io

    from PIL import Image

    import fake_vllm

    pids = fake_vllm.use(monkeypatch, tmp_path, {"token_s": 0.002, "record_bodies": True})
    opts = options[:-1] + ", output_length_scale: 0.02}"
    counts, record = _measure(
        tmp_path,
        (
            f"  - {{task: {task}, backend: vllm, models: [tiny-idefics3], num_requests: 5, seed: 1,\n"
            f"     options: {opts}, grid: {{max_num_seqs: [2]}}}}\n"
        ),
    )
    assert counts == {"ok": 1}, record.get("message")
    bodies = [b for b in _bodies(pids) if b["path"] == "/v1/chat/completions"]
    assert len(bodies) == 5
    argv = record["backend_info"]["server_argv"]
    assert argv[argv.index("--limit-mm-per-prompt") + 1] == f'{{"image": {parts}}}'
    assert argv[argv.index("--mm-processor-cache-gb") + 1] == "0"
    media = record["backend_info"]["media"]
    assert media["images"] == parts and media["as_frames_of_a_clip"] == (task == "video-chat")
    size = (96, 64) if task == "image-chat" else (48, 32)
    seen = set()
    for b in bodies:
        (message,) = b["body"]["messages"]
        content = message["content"]
        assert [c["type"] for c in content] == ["image_url"] * parts + ["text"]
        for c in content[:-1]:
            url = c["image_url"]["url"]
            assert url.startswith("data:image/jpeg;base64,")
            seen.add(url)
            assert Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).size == size
        assert content[-1]["text"].strip()
        assert b["body"]["ignore_eos"] and b["body"]["max_tokens"] == b["body"]["min_tokens"] >= 1
    assert len(seen) == 5 * parts  # every image of every request is its own
    assert record["metrics"]["num_failed_requests"] == 0
    assert record["telemetry"]["server_pid"] > 0  # its process tree is sampled, as for text


def test_media_shapes_from_options_and_bad_sizes_refused():
    from harness.workloads import multimodal

    assert multimodal.media_shape("image-chat", {}) == multimodal.DEFAULT_SHAPES["image-chat"]
    shape = multimodal.media_shape("video-chat", {"video_frames": 8, "frame_size": "320x180"})
    assert (shape.images, shape.width, shape.height, shape.as_frames_of_a_clip) == (8, 320, 180, True)
    with pytest.raises(ConfigError, match=r"options\.image_size must be WIDTHxHEIGHT"):
        multimodal.media_shape("image-chat", {"image_size": "big"})
    frames = multimodal.synthetic_images(shape, seed=3)
    assert len(frames) == 8 and len(set(frames)) == 8 and frames == multimodal.synthetic_images(shape, seed=3)
