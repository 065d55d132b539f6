"""Names that become folders match in full, and nothing a run writes leaves the results folder (symlinks resolved)."""

from __future__ import annotations

import io
import os

import pytest
import yaml

from harness.cli import main
from harness.config import parse_engine_spec, split_run_id
from harness.errors import ConfigError, HarnessError
from harness.measuring import paths, store
from harness.orchestration.runner import measure_study
from harness.orchestration.study import load_study

STUDY = {
    "study": "p",
    "settings": {"idle_power_s": 0},
    "runs": [
        {
            "task": "cpu-trivial",
            "backend": "trivial",
            "models": ["cpu-spin"],
            "num_requests": 4,
            "max_output_tokens": 4,
            "options": {"step_s": 0.001},
            "grid": {"max_num_seqs": [1]},
        }
    ],
}


def _config(tmp_path, **top):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({**STUDY, **top}))
    return path


def _tree(folder) -> dict:
    """Every path under ``folder`` (symlinks not followed) with its size or link target."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = os.path.join(root, name)
            out[os.path.relpath(p, folder)] = os.readlink(p) if os.path.islink(p) else os.lstat(p).st_size
    return out


# --- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ok\n", "ok\r\n", "\nok", "ok/x", "../ok", "", "Ok", ".ok"])
def test_a_study_name_must_match_in_full(tmp_path, name):
    with pytest.raises(ConfigError, match="study: must match") as err:
        load_study(_config(tmp_path, study=name))
    assert "\n" not in str(err.value)
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    "study, run_id", [("ok\n", "abc"), ("ok", "abc\n"), ("ok", "../abc"), ("..", "abc"), ("ok", "a/b"), ("ok", ".abc")]
)
def test_run_folder_names_must_match_in_full(tmp_path, study, run_id):
    with pytest.raises(HarnessError, match="is not a plain folder name"):
        store.run_path(tmp_path, study, run_id)


def test_repeat_ids_and_engine_specs_match_in_full():
    assert split_run_id("abc-r3") == ("abc", 3)
    assert split_run_id("abc-r3\n") == ("abc-r3\n", 1)
    assert parse_engine_spec("vllm==0.11.1") == ("vllm", "0.11.1")
    for spec in ("vllm==0.11.1\nx", "vllm==0.11.1/../x", "vllm==0.11.1 x"):
        with pytest.raises(ConfigError, match="engine must read"):
            parse_engine_spec(spec)


def test_a_study_named_with_a_newline_measures_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["measure", str(_config(tmp_path, study="ok\n")), "--results", "results"])
    err = capsys.readouterr().err
    assert code != 0 and err.count("\n") == 1 and "study: must match" in err and "'ok\\n'" in err
    assert not (tmp_path / "results").exists()


# --- the results folder ----------------------------------------------------------------------------


def test_a_sweep_writes_inside_the_results_folder_and_a_symlinked_results_folder_is_fine(tmp_path, no_nvml):
    real = tmp_path / "elsewhere"
    real.mkdir()
    (tmp_path / "results").symlink_to(real)
    counts = measure_study(load_study(_config(tmp_path)), tmp_path / "results", progress=False, out=io.StringIO())
    assert counts == {"ok": 1}
    (run_dir,) = store.iter_run_dirs(real)
    assert store.verify(run_dir) == []


def _outside(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep\n")
    return outside


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_study_folder_linked_outside_is_refused_in_one_line_and_nothing_is_written(
    tmp_path, monkeypatch, capsys, no_nvml, dry_run
):
    outside = _outside(tmp_path)
    results = tmp_path / "results"
    results.mkdir()
    (results / "p").symlink_to(outside)
    before_out, before_results = _tree(outside), _tree(results)
    monkeypatch.chdir(tmp_path)
    code = main(["measure", str(_config(tmp_path)), "--results", "results", *(["--dry-run"] if dry_run else [])])
    err = capsys.readouterr().err
    assert code != 0 and err.startswith("error: refusing to write run folder results/p/") and err.count("\n") == 1
    assert f"it resolves to {outside.resolve()}/" in err and "outside the results folder results" in err
    assert _tree(outside) == before_out and _tree(results) == before_results


def test_a_run_folder_or_a_file_in_it_linked_outside_is_refused(tmp_path, no_nvml):
    outside = _outside(tmp_path)
    study = load_study(_config(tmp_path))
    (cfg,) = study.configurations
    results = tmp_path / "results"
    (results / "p").mkdir(parents=True)
    (results / "p" / cfg.run_id).symlink_to(outside, target_is_directory=True)
    with pytest.raises(paths.OutsideResults, match=rf"run folder .*{cfg.run_id}: it resolves to {outside.resolve()}"):
        measure_study(study, results, progress=False, out=io.StringIO())
    (results / "p" / cfg.run_id).unlink()
    run_dir = results / "p" / cfg.run_id
    run_dir.mkdir()
    for name in ("server.log", ".lock"):  # appended to and opened for writing: following them would write outside
        (run_dir / name).symlink_to(outside / "keep.txt")
        before = _tree(outside)
        with pytest.raises(paths.OutsideResults, match=rf"file .*{name}: it resolves to .*keep.txt, outside"):
            measure_study(study, results, progress=False, out=io.StringIO())
        assert _tree(outside) == before and (outside / "keep.txt").read_text() == "keep\n"
        (run_dir / name).unlink()
    (results / "p" / ".replaced").symlink_to(outside)
    with pytest.raises(paths.OutsideResults, match="the folder of replaced runs"):
        measure_study(study, results, progress=False, out=io.StringIO(), force=True)
    (results / "p" / ".replaced").unlink()
    assert measure_study(study, results, progress=False, out=io.StringIO()) == {"ok": 1}


def test_a_symlink_that_stays_inside_the_results_folder_is_fine(tmp_path, no_nvml):
    results = tmp_path / "results"
    (results / "shared").mkdir(parents=True)
    (results / "p").symlink_to(results / "shared")
    study = load_study(_config(tmp_path))
    assert measure_study(study, results, progress=False, out=io.StringIO()) == {"ok": 1}
    assert store.verify(results / "shared" / study.configurations[0].run_id) == []


def test_write_run_refuses_a_file_linked_outside_its_folder(tmp_path):
    outside = _outside(tmp_path)
    run_dir = tmp_path / "results" / "p" / "abc"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").symlink_to(outside / "keep.txt")
    with pytest.raises(paths.OutsideResults, match="run.json: it resolves to .*keep.txt, outside its run folder"):  # noqa: RUF043
        store.write_run(run_dir, {"status": "ok"})
    assert sorted(os.listdir(run_dir)) == ["run.json"] and (outside / "keep.txt").read_text() == "keep\n"
    (run_dir / "run.json").unlink()
    store.write_run(run_dir, {"status": "ok"})
    assert store.verify(run_dir) == []


def test_the_results_folder_is_resolved_once(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    link = tmp_path / "results"
    link.symlink_to(first)
    root = store.results_folder(link)
    assert root == link and str(root) == str(link) and root.real == first.resolve()
    assert store.run_path(root, "p", "abc") == link / "p" / "abc"
    link.unlink()
    link.symlink_to(second)  # moved after the sweep named it: the sweep's folder is still the first
    with pytest.raises(paths.OutsideResults, match=f"resolves to {second.resolve()}/p/abc, outside"):
        store.run_path(root, "p", "abc")
    assert store.run_path(link, "p", "abc") == link / "p" / "abc"  # named afresh, it is resolved afresh
