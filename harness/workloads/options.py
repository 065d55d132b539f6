"""Backend options: one table per backend (name -> :class:`Opt`: type, default, range, meaning).

Each backend declares its table once, as its class's ``option_table`` (:class:`harness.workloads.base.Backend`)::

    OPTION_TABLE = {"port": Opt("int", minimum=1, maximum=65535, doc="a fixed port"),
                    "device": Opt("choice", default="auto", choices=("auto", "cpu"), doc="where the model runs")}

The defaults (:func:`defaults`) and the checks (:func:`problem`, :func:`problems`) both derive from it. The
study reader checks a config's options with :func:`problems` before anything starts
(``FILE: runs[i].options.NAME: ...``, the same one-line error as a bad knob), and
:meth:`harness.workloads.base.Backend.resolve_options` checks them again at start with the same function.
``None`` always means "the backend's default"; a ``required`` option must be given (no default). Booleans are
never numbers here (YAML's ``yes`` is not 1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

KINDS = ("bool", "int", "number", "string", "choice", "strings", "devices")


@dataclass(frozen=True)
class Opt:
    """One option: ``kind`` in :data:`KINDS`, its ``default`` (``None``: the backend decides), its range
    (bounds inclusive; ``above`` an exclusive lower bound, ``number > above``; ``choices`` for a choice),
    ``doc``, what it does (with its unit), and ``required``: a config must give it (no default)."""

    kind: str
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    choices: tuple = ()
    default: Any = None
    doc: str = ""
    check: Callable[[object], str | None] | None = None  # a further rule on a value of the right type: why not
    required: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown option kind {self.kind!r}")
        why = problem(self, self.default)
        if why:
            raise ValueError(f"an option's default does not fit its own type and range: {why}")
        if self.required and self.default is not None:
            raise ValueError("a required option has no default")

    def describe(self) -> str:
        """The values this option takes, in words (the end of a ``must be ...`` error)."""
        if self.kind == "bool":
            return "true or false"
        if self.kind == "choice":
            return "one of " + ", ".join(map(str, self.choices))
        if self.kind == "string":
            return "a non-empty string"
        if self.kind == "strings":
            return "a list of strings"
        if self.kind == "devices":
            return "all or a list of GPU indices (integers >= 0)"
        noun = "an integer" if self.kind == "int" else "a number"
        bounds = []
        if self.above is not None:
            bounds.append(f"> {self.above:g}")
        if self.minimum is not None:
            bounds.append(f">= {self.minimum:g}")
        if self.maximum is not None:
            bounds.append(f"<= {self.maximum:g}")
        return f"{noun} {' and '.join(bounds)}".strip()


OptionTable = Mapping[str, Opt]


def defaults(table: OptionTable) -> dict[str, Any]:
    """Every option of ``table`` with its default (a fresh dict; list defaults are shared, never mutated)."""
    return {name: opt.default for name, opt in table.items()}


def problem(spec: Opt, value: Any) -> str | None:
    """Why ``value`` does not fit ``spec``, or None (``None`` itself always fits: the default)."""
    why = _kind_problem(spec, value)
    if why is None and value is not None and spec.check is not None:
        why = spec.check(value)
    return why


def _kind_problem(spec: Opt, value) -> str | None:
    if value is None:
        return None
    wrong = f"must be {spec.describe()}, got {value!r}"
    if spec.kind == "bool":
        return None if isinstance(value, bool) else wrong
    if spec.kind == "string":
        return None if isinstance(value, str) and value.strip() else wrong
    if spec.kind == "choice":
        return None if value in spec.choices and not isinstance(value, bool) else wrong
    if spec.kind == "strings":
        ok = isinstance(value, (list, tuple)) and all(
            isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value
        )
        return None if ok else wrong
    if spec.kind == "devices":
        ok = value == "all" or (
            isinstance(value, (list, tuple))
            and len(value) > 0
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
        )
        return None if ok else wrong
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return wrong
    if spec.kind == "int" and not isinstance(value, int):
        return wrong
    if value != value:  # NaN
        return wrong
    if spec.above is not None and not value > spec.above:
        return wrong
    if spec.minimum is not None and value < spec.minimum:
        return wrong
    if spec.maximum is not None and value > spec.maximum:
        return wrong
    return None


def problems(table: Mapping, options: Mapping | None) -> list[tuple[str, str]]:
    """``(name, why)`` for each option that does not fit its spec in ``table``, then each required one that is
    missing (unknown names are left to the caller)."""
    given = dict(options or {})
    out = []
    for name, value in given.items():
        spec = table.get(name)
        if spec is not None:
            why = problem(spec, value)
            if why:
                out.append((name, why))
    for name, spec in table.items():
        if getattr(spec, "required", False) and given.get(name) is None:
            out.append((name, f"is required: {spec.doc}" if spec.doc else "is required"))
    return out


def unknown(table: OptionTable, options: Mapping | None) -> list[str]:
    """The names in ``options`` that ``table`` does not know, sorted."""
    return sorted(set(options or ()) - set(table))
