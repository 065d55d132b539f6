"""The endpoint backend against a real vLLM CPU server that the test starts (once for the module, through
the vllm backend's own launcher) and then measures as an external endpoint: completions at Poisson
arrivals with lengths forced to the prompts' reference lengths, and chat at a fixed concurrency with
natural lengths. Marked ``vllm``/``slow``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from harness.config import configuration_from_dict
from harness.orchestration.study import load_study
from support import REFERENCE_DIR as REF

SAMPLE = Path(__file__).resolve().parent.parent / "configs" / "prompts" / "own-server-sample.jsonl"
pytestmark = [pytest.mark.vllm, pytest.mark.slow]


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory):
    """A tiny-llama vLLM CPU server with a chat template: ``(base_url, served name, model folder)``."""
    from harness.workloads.vllm_backend import VLLMBackend

    mp = pytest.MonkeyPatch()
    mp.setenv("HARNESS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "harness-cache"))
    if "HARNESS_REFERENCE_DIR" not in os.environ and REF.is_dir():
        mp.setenv("HARNESS_REFERENCE_DIR", str(REF))
    folder = tmp_path_factory.mktemp("vllm-server")
    # inline: a template file names a path, which extra_args refuses (harness.workloads.engine_args)
    template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant:"
    cfg = configuration_from_dict(
        dict(
            study="t",
            task="lm-arena-chat",
            family="llm-chat",
            backend="vllm",
            model="tiny-llama",
            num_gpus=1,
            tensor_parallel=1,
            expert_parallel=1,
            precision="float32",
            max_num_seqs=4,
            max_num_batched_tokens=8192,
            batch_size=None,
            inference_steps=None,
            height=None,
            width=None,
            num_frames=None,
            num_requests=4,
            num_iterations=None,
            seed=0,
            length_source=None,
            max_output_tokens=16,
            options={
                "max_model_len": 512,
                "startup_timeout_s": 1500,  # a loaded 2-core host starts slowly
                "extra_args": ["--chat-template", template],
            },
        )
    )
    backend = VLLMBackend()
    try:
        backend.start(cfg, folder / "run")
        yield backend.base_url, backend.served_name, backend.info["model_folder"]
    finally:
        backend.stop()
        mp.undo()


def test_a_running_vllm_server_measured_as_an_endpoint(vllm_server, tmp_path, no_nvml):
    from harness.measuring import store
    from harness.orchestration import runner

    url, name, model_folder = vllm_server
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines()]

    def block(**options):
        opts = {"base_url": url, "prompts": str(SAMPLE), **options}
        return (
            f"  - {{task: lm-arena-chat, backend: openai, models: [{name}], num_requests: 8, seed: 0,\n"
            f"     max_output_tokens: 8, options: {json.dumps(opts)}, grid: {{max_num_seqs: [4]}}}}\n"
        )

    config = tmp_path / "study.yaml"
    config.write_text(
        "study: own\nsettings: {cooldown_s: 0, idle_power_s: 0, sampler_hz: 10, run_timeout_s: 300}\n"
        "runs:\n"
        + block(arrival="poisson", rate_per_s=4.0, output_lengths="reference", ttft_target_ms=60000)
        + block(api="chat", arrival="concurrency", concurrency=2, output_lengths="natural", tokenizer=model_folder)
    )
    study = load_study(config)
    counts = runner.measure_study(study, tmp_path / "results", progress=False)
    records = [
        json.loads((store.run_path(tmp_path / "results", "own", c.run_id) / "run.json").read_text())
        for c in study.configurations
    ]
    assert counts == {"ok": 2}, [r.get("message") for r in records]
    completions, chat = records
    run_dir = store.run_path(tmp_path / "results", "own", completions["run_id"])
    req = pd.read_parquet(run_dir / "requests.parquet")
    info = completions["backend_info"]
    assert req["success"].all() and len(req) == 8
    assert req["output_tokens"].tolist() == [min(rows[i]["output_tokens"], 8) for i in info["prompts"]["rows_used"]]
    assert req["token_times_s"].map(len).tolist() == req["output_tokens"].tolist()
    # vLLM's /tokenize counted the prompts before the run; its usage of each request agrees
    assert info["prompts"]["prompt_tokens_counted_by"].startswith("the server's /tokenize")
    assert req["prompt_tokens"].tolist() == info["prompts"]["prompt_tokens_planned"]
    assert info["metrics_scraped"] and completions["metrics"]["arrival_pattern"] == "poisson"
    assert completions["metrics"]["steady_duration_s"] > 0 and completions["metrics"]["num_good_requests"] == 8
    assert completions["metrics"]["energy_per_token_joules"] is None  # no GPU here

    chat_req = pd.read_parquet(store.run_path(tmp_path / "results", "own", chat["run_id"]) / "requests.parquet")
    assert (
        chat_req["success"].all() and (chat_req["output_tokens"] <= 8).all() and (chat_req["output_tokens"] > 0).all()
    )
    assert chat_req["token_times_s"].map(len).tolist() == chat_req["output_tokens"].tolist()
    assert chat["backend_info"]["prompts"]["prompt_tokens_counted_by"] == f"tokenizer of {model_folder}"
    assert chat["metrics"]["arrival_pattern"] == "concurrency" and chat["metrics"]["steady_open_time_s"] is not None
