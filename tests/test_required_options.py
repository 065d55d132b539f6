"""Every option is checked when the config is read, required ones and those that need one another included: one
line, nothing written, exit 2; the own-server example keeps loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.cli import main
from harness.errors import ConfigError
from harness.orchestration.study import load_study
from harness.workloads.options import Opt, problems

ROOT = Path(__file__).resolve().parent.parent


def _openai_config(tmp_path: Path, **options) -> Path:
    run = {
        "task": "lm-arena-chat",
        "backend": "openai",
        "models": ["my-model"],
        "num_requests": 4,
        "options": {"base_url": "http://127.0.0.1:9", "prompts": "configs/prompts/own-server-sample.jsonl", **options},
        "grid": {"max_num_seqs": [2]},
    }
    for name, value in list(run["options"].items()):
        if value is None:
            del run["options"][name]
    path = tmp_path / "own.yaml"
    path.write_text(yaml.safe_dump({"study": "own", "settings": {"idle_power_s": 0}, "runs": [run]}))
    return path


@pytest.mark.parametrize("missing", ["prompts", "base_url"])
def test_a_missing_required_option_is_refused_when_the_config_is_read(tmp_path, missing, capsys):
    path = _openai_config(tmp_path, **{missing: None})
    with pytest.raises(ConfigError, match=rf"runs\[0\]\.options\.{missing}: is required"):
        load_study(path)
    results = tmp_path / "results"
    assert main(["measure", str(path), "--results", str(results), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"options.{missing}: is required" in err[0]
    assert not results.exists()


@pytest.mark.parametrize(
    "options, says",
    [
        ({"base_url": "ftp://127.0.0.1"}, "must be an http(s) URL"),
        ({"arrival": "poisson"}, "rate_per_s"),
    ],
)
def test_options_that_need_one_another_are_refused_when_the_config_is_read(tmp_path, options, says):
    with pytest.raises(ConfigError, match=r"runs\[0\]\.options: ") as err:
        load_study(_openai_config(tmp_path, **options))
    assert says in str(err.value) and "\n" not in str(err.value)


def test_the_own_server_example_still_loads():
    study = load_study(ROOT / "configs" / "own-server.example.yaml")
    assert [c.backend for c in study.configurations] == ["openai"]


def test_required_is_part_of_the_table():
    table = {"url": Opt("string", required=True, doc="the server"), "n": Opt("int", minimum=1)}
    assert problems(table, {"n": 2}) == [("url", "is required: the server")]
    assert problems(table, {"url": "x"}) == []
    with pytest.raises(ValueError, match="required option has no default"):
        Opt("string", required=True, default="x")
