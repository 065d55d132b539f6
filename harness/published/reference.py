"""The paper's published measurements: ML.ENERGY Leaderboard v3.

The files are someone else's data, so they are never committed here. They are
pinned (repository, commit, sha256 of every file in ``data/reference_manifest.txt``)
and read from ``HARNESS_REFERENCE_DIR`` when it is set, else from a user cache
that is filled from the pinned commit on first use.

Two tidy tables come out, units in every column name:

* :func:`llm_table` -- one row per LLM / multimodal-LLM configuration
  (``lm-arena-chat``, ``gpqa``, ``sourcegraph-fim``, ``image-chat``, ``video-chat``);
* :func:`diffusion_table` -- one row per diffusion configuration
  (``text-to-image``, ``text-to-video``).

Both carry ``task``, ``source``, ``output_unit`` and ``energy_per_output_joules``
(energy per response, per image or per video) so that one chart can show all
seven tasks.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd

from harness.errors import ReferenceDataError
from harness.vocabulary.tasks import (  # noqa: F401 (TASK_NAMES and TASKS re-exported for readers of the table)
    DIFFUSION_TASKS,
    LLM_TASKS,
    OUTPUT_UNIT,
    TASK_NAMES,
    TASKS,
)

REPOSITORY = "ml-energy/leaderboard"
COMMIT = "0cd52dab897c5d91a45f4d413038f3b8b4251b0f"
FOLDER = "public/data"
SOURCE = f"mlenergy-leaderboard-v3@{COMMIT[:7]}"
RAW_URL = f"https://raw.githubusercontent.com/{REPOSITORY}/{COMMIT}/{FOLDER}/{{path}}"
ENV_VAR = "HARNESS_REFERENCE_DIR"


_MANIFEST_PATH = Path(__file__).parent / "data" / "reference_manifest.txt"


@functools.lru_cache(maxsize=1)
def manifest() -> dict[str, str]:
    """Pinned files: relative path -> sha256."""
    out = {}
    for line in _MANIFEST_PATH.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            digest, path = line.split(maxsplit=1)
            out[path.strip()] = digest
    return out


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "joules-study" / "reference" / COMMIT / FOLDER


def data_dir() -> Path:
    """The folder that holds the reference files (``HARNESS_REFERENCE_DIR`` or the cache)."""
    local = os.environ.get(ENV_VAR)
    if local:
        path = Path(local).expanduser()
        if not path.is_dir():
            raise ReferenceDataError(f"{ENV_VAR}={local} is not a folder")
        return path
    return _cache_dir()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _download(rel: str, dest: Path) -> None:
    url = RAW_URL.format(path=rel)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310  # RAW_URL: a pinned https URL
            payload = resp.read()
    except (urllib.error.URLError, OSError) as exc:
        raise ReferenceDataError(
            f"reference file {rel} is not cached and could not be downloaded from {url} ({exc}); "
            f"set {ENV_VAR} to a local copy of {REPOSITORY}@{COMMIT[:7]}/{FOLDER}"
        ) from None
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".part-")
    with os.fdopen(fd, "wb") as fh:
        fh.write(payload)
    os.replace(tmp, dest)


def verified_path(rel: str, root: Path | None = None) -> Path:
    """Path of one pinned file, downloaded if needed, after its sha256 is checked."""
    digests = manifest()
    if rel not in digests:
        raise ReferenceDataError(f"reference file {rel} is not in the pinned manifest")
    root = data_dir() if root is None else root
    path = root / rel
    if not path.is_file():
        if os.environ.get(ENV_VAR):
            raise ReferenceDataError(f"reference file {rel} is missing from {root}")
        _download(rel, path)
    actual = _sha256(path)
    if actual != digests[rel]:
        raise ReferenceDataError(
            f"reference file {rel} fails its checksum (sha256 {actual[:12]}..., pinned {digests[rel][:12]}...) in {root}"  # noqa: E501
        )
    return path


def _read_json(rel: str, root: Path | None = None):
    path = verified_path(rel, root)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ReferenceDataError(f"reference file {rel} cannot be read: {exc}") from None


def verify_all(root: Path | None = None) -> int:
    """Check every pinned file; returns how many were checked."""
    for rel in manifest():
        verified_path(rel, root)
    return len(manifest())


def _task_frame(task: str, root: Path | None) -> pd.DataFrame:
    payload = _read_json(f"tasks/{task}.json", root)
    frame = pd.DataFrame(payload["configurations"])
    frame.insert(0, "task", task)
    return frame


def _finish(frame: pd.DataFrame) -> pd.DataFrame:
    frame["source"] = SOURCE
    frame["is_reference"] = True
    frame["output_unit"] = frame["task"].map(OUTPUT_UNIT)
    frame["base_model_id"] = frame["model_id"].str.replace(r"-FP8$", "", regex=True)
    frame["gpu"] = frame["num_gpus"].astype(str) + " x " + frame["gpu_model"]
    return frame


@functools.lru_cache(maxsize=4)
def _llm_table(root_key: str) -> pd.DataFrame:
    root = Path(root_key)
    frame = pd.concat([_task_frame(t, root) for t in LLM_TASKS], ignore_index=True)
    frame["energy_per_output_joules"] = frame["energy_per_request_joules"]
    frame["batch_size"] = frame["max_num_seqs"]
    return _finish(frame)


@functools.lru_cache(maxsize=4)
def _diffusion_table(root_key: str) -> pd.DataFrame:
    root = Path(root_key)
    frames = []
    for task in DIFFUSION_TASKS:
        frame = _task_frame(task, root)
        unit = OUTPUT_UNIT[task]
        frame = frame.rename(
            columns={
                f"throughput_{unit}s_per_sec": "throughput_outputs_per_sec",
                "image_height": "height_pixels",
                "image_width": "width_pixels",
                "video_height": "height_pixels",
                "video_width": "width_pixels",
            }
        )
        frame["energy_per_output_joules"] = frame[f"energy_per_{unit}_joules"]
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    frame["num_frames"] = frame["num_frames"].fillna(1).astype(int)
    return _finish(frame)


def llm_table(root: Path | None = None) -> pd.DataFrame:
    """Tidy table of every published LLM-type configuration (a copy; safe to modify)."""
    return _llm_table(str(data_dir() if root is None else root)).copy()


def diffusion_table(root: Path | None = None) -> pd.DataFrame:
    """Tidy table of every published diffusion configuration (a copy; safe to modify)."""
    return _diffusion_table(str(data_dir() if root is None else root)).copy()


def all_table(root: Path | None = None) -> pd.DataFrame:
    """Both tables stacked, with the columns they share plus each one's own."""
    return pd.concat([llm_table(root), diffusion_table(root)], ignore_index=True)


def pin(root: Path | None = None) -> dict:
    """Where the pinned data come from: repository, commit (and its web address) and the data's own date."""
    return {
        "repository": REPOSITORY,
        "commit": COMMIT,
        "folder": FOLDER,
        "url": f"https://github.com/{REPOSITORY}/tree/{COMMIT}/{FOLDER}",
        "data_updated": model_index(root).get("last_updated"),
    }


def model_index(root: Path | None = None) -> dict:
    """``index.json``: model metadata (parameters, precision, architecture) and task families."""
    return _read_json("index.json", root)


def output_length_distribution(model_id: str, task: str, root: Path | None = None) -> dict:
    """Published histogram of output lengths for one model and task: ``{"bins": [...], "counts": [...]}``.

    Taken from the model file's top-level distribution (pooled over its runs).
    """
    rel = f"models/{model_id.replace('/', '__')}__{task}.json"
    if rel not in manifest():
        known = sorted({p.split("__")[-1].removesuffix(".json") for p in manifest() if p.startswith("models/")})
        raise ReferenceDataError(
            f"no published output lengths for model {model_id!r} on task {task!r} (tasks with models: {', '.join(known)})"  # noqa: E501
        )
    payload = _read_json(rel, root)
    dist = payload.get("output_length_distribution")
    if not dist:
        raise ReferenceDataError(f"reference file {rel} has no output_length_distribution")
    return {"bins": list(dist["bins"]), "counts": list(dist["counts"])}


def models_with_lengths(task: str) -> list[str]:
    """Model ids that have a published output-length histogram for ``task``."""
    out = []
    for rel in manifest():
        if rel.startswith("models/") and rel.endswith(f"__{task}.json"):
            out.append(rel.removeprefix("models/").removesuffix(f"__{task}.json").replace("__", "/", 1))
    return sorted(out)
