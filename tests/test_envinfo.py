"""The environment capture's ``torch_cuda``: torch's own ``torch.version.cuda``, never its version tag."""

from __future__ import annotations

import sys
import types

from harness.measuring import envinfo


def fake_torch_package(tmp_path, version: str, cuda: str | None):
    """A ``torch`` package on disk whose ``__init__`` refuses to be imported (the capture must not import it)."""
    pkg = tmp_path / "torch"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise ImportError('the capture imported torch itself')\n")
    (pkg / "version.py").write_text(
        f"from typing import Optional\n__version__ = {version!r}\ncuda: Optional[str] = {cuda!r}\n"
    )
    return tmp_path


def test_pypis_cuda_wheel_without_a_tag_records_its_cuda(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.syspath_prepend(str(fake_torch_package(tmp_path, "2.9.0", "12.8")))
    assert envinfo.torch_cuda() == "12.8"
    assert "torch" not in sys.modules
    envinfo.capture.cache_clear()
    try:
        assert envinfo.capture()["torch_cuda"] == "12.8"
    finally:
        envinfo.capture.cache_clear()


def test_a_cpu_build_records_none_not_its_tag(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.syspath_prepend(str(fake_torch_package(tmp_path, "2.13.0+cpu", None)))
    assert envinfo.torch_cuda() is None


def test_an_imported_torch_is_asked_directly(monkeypatch):
    torch = types.ModuleType("torch")
    torch.version = types.SimpleNamespace(cuda="13.0", __version__="2.9.0+cu128")  # the tag is not read
    monkeypatch.setitem(sys.modules, "torch", torch)
    assert envinfo.torch_cuda() == "13.0"


def test_no_torch_records_none(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.setattr(envinfo.importlib.util, "find_spec", lambda name: None)
    assert envinfo.torch_cuda() is None
