"""Compilation is paid once per engine and model: the server's compile cache is kept between starts, the
first start records a miss and a second start of the same configuration finds it (a hit), with the fake vLLM
server (tests/fake_vllm.py writes what it "compiled" under $VLLM_CACHE_ROOT/torch_compile_cache as vLLM does)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from harness.workloads import vllm_backend, vllm_server
from support import llm_configuration


def _cfg(**over):
    return llm_configuration(**over)


def _start(cfg, run_dir: Path) -> dict:
    backend = vllm_backend.VLLMBackend()
    try:
        backend.start(cfg, run_dir)
        link = backend._tmp / "cache" / "torch_compile_cache"
        assert link.is_symlink() and link.resolve() == Path(backend.info["compile_cache"]["path"]).resolve()
        return dict(backend.info["compile_cache"]) | {"log": (run_dir / "server.log").read_text()}
    finally:
        backend.stop()


def test_a_second_start_of_the_same_configuration_finds_the_compile_cache(tmp_path, vllm_env, monkeypatch):
    import fake_vllm

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))  # no cache from other tests
    fake_vllm.use(monkeypatch, tmp_path)
    first = _start(_cfg(), tmp_path / "run1")
    assert first["state"] == "miss" and "fake vllm: compile cache miss" in first["log"]
    second = _start(_cfg(max_num_seqs=4), tmp_path / "run2")  # another batch of the series: same engine and model
    assert second["state"] == "hit" and second["path"] == first["path"]
    assert "fake vllm: compile cache hit" in second["log"]  # the server itself found what the first compiled
    assert Path(first["path"]).parent == vllm_server.compile_cache_root()
    other = _start(_cfg(precision="float16"), tmp_path / "run3")  # another precision: never the same cache
    assert other["state"] == "miss" and other["path"] != first["path"]


def test_the_key_separates_engines_models_and_layouts(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))
    facts = {
        "engine": "vllm==0.11.1",
        "python": "/x/python",
        "model": "tiny-llama",
        "digest": "d1",
        "precision": "bfloat16",
        "tensor_parallel": 1,
    }
    first = vllm_server.compile_cache(facts)
    assert not first.hit and first.path.is_dir()
    assert not vllm_server.compile_cache(facts).hit  # an empty folder is no cache
    (first.path / "entry").write_text("x")
    assert vllm_server.compile_cache(facts).hit
    for change in ({"engine": "vllm==0.11.2"}, {"digest": "d2"}, {"tensor_parallel": 2}):
        assert vllm_server.compile_cache(facts | change).key != first.key
    assert dataclasses.asdict(first).keys() == {"path", "key", "hit"}
