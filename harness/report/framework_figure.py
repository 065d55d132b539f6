"""The framework as a layered figure: choices -> latent metrics -> end metrics, left to right, few crossings.

Each node sits in the column of its longest path from the choices (algorithm, software and hardware knobs in
the first column, grouped by layer); an edge that spans several columns passes through a slot between the boxes
of every column it crosses, so no edge runs through a box or a label. The order within each column minimises
crossings (barycentre sweeps, then the best of a few sweeps kept); the vertical positions then straighten the
edges. :func:`layout` is the geometry (pure, in pixels; :attr:`Layout.crossings` counts crossing edge pairs);
:func:`framework_figure` draws it with Altair (boxes, curved edges with arrowheads, tooltips naming the
mechanism and the finding that shows it)::

    from harness.analysis import findings as F
    chart = framework_figure(F.FRAMEWORK_NODES, F.FRAMEWORK_EDGES, found)
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pandas as pd

CHOICE_LAYERS = ("algorithm", "software", "hardware")
LAYER_NAMES = {
    "algorithm": "Algorithm",
    "software": "Software",
    "hardware": "Hardware",
    "latent": "Latent metric",
    "end": "End metric",
}
LAYER_FILL = {
    "algorithm": "#d8efe6",
    "software": "#e3e1f2",
    "hardware": "#fbe2cf",
    "latent": "#f9dcea",
    "end": "#e4e4e4",
}
LAYER_STROKE = {
    "algorithm": "#1b9e77",
    "software": "#7570b3",
    "hardware": "#d95f02",
    "latent": "#c51b7d",
    "end": "#555555",
}
# Nodes drawn below another node of the same column, joined by a short vertical arrow (not a column of their own).
STACKED = {"throughput_per_watt": "energy"}

BOX_W, BOX_H, SLOT_H = 106.0, 36.0, 8.0  # pixels
COL_GAP, ROW_GAP, GROUP_GAP, TOP = 36.0, 10.0, 22.0, 44.0


@dataclass
class Item:
    """A box (a node) or a slot (where a long edge crosses a column) in one column."""

    key: str
    column: int
    is_node: bool
    height: float
    group: int = 0  # choices: the layer's rank (kept together); other columns: 0
    y: float = 0.0  # centre, pixels from the top


@dataclass
class Layout:
    """Pixel geometry of the framework figure."""

    nodes: pd.DataFrame  # id, label, layer, description, column, x, x2, y, y2 (box corners), cx, cy
    edges: pd.DataFrame  # one row per drawn point: edge, order, x, y (+ source, target, mechanism, finding)
    arrows: pd.DataFrame  # one row per edge: edge, x, y, angle (degrees)
    width: float
    height: float
    crossings: int
    columns: int
    headers: list[tuple[str, float]] = field(default_factory=list)  # (title, x centre)


def _wrap(label: str, width: int = 16) -> str:
    """A label on at most two lines of about ``width`` characters (split at spaces; before a parenthesis when
    both parts fit)."""
    head, paren, tail = label.partition(" (")
    if paren and len(head) <= width + 2 and len(tail) + 1 <= width + 2:
        return f"{head}\n({tail}"
    lines: list[str] = []
    for word in label.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return "\n".join(lines[:2])


def _columns(nodes: pd.DataFrame, edges: pd.DataFrame) -> dict[str, int]:
    """Longest path from the choices: choices in column 0, each other node one right of its furthest source."""
    column = dict.fromkeys(nodes.loc[nodes["layer"].isin(CHOICE_LAYERS), "id"], 0)
    incoming = edges.groupby("target")["source"].apply(list).to_dict()
    pending = [n for n in nodes["id"] if n not in column and n not in STACKED]
    while pending:
        progressed = False
        for n in list(pending):
            sources = [s for s in incoming.get(n, []) if s not in STACKED]
            if all(s in column for s in sources):
                column[n] = 1 + max((column[s] for s in sources), default=0)
                pending.remove(n)
                progressed = True
        if not progressed:  # a cycle: place what is left one column right of what is placed
            for n in pending:
                column[n] = 1 + max(column.values())
            break
    for node, above in STACKED.items():
        if node in set(nodes["id"]) and above in column:
            column[node] = column[above]
    return column


def _crossings(order: dict[int, list[Item]], segments: Iterable[tuple[str, str]]) -> int:
    """Pairs of segments (between adjacent columns) that cross: their ends are in opposite orders."""
    where = {it.key: i for col in order.values() for i, it in enumerate(col)}
    column = {it.key: c for c, col in order.items() for it in col}
    by_column: dict[int, list[tuple[int, int]]] = {}
    for a, b in set(segments):
        by_column.setdefault(column[a], []).append((where[a], where[b]))
    total = 0
    for pairs in by_column.values():
        for (a1, b1), (a2, b2) in itertools.combinations(pairs, 2):
            if (a1 - a2) * (b1 - b2) < 0:
                total += 1
    return total


def _isotonic(values: list[float]) -> list[float]:
    """The non-decreasing sequence closest to ``values`` in squared distance (pool adjacent violators)."""
    blocks: list[list[float]] = []  # [mean, weight]
    for v in values:
        blocks.append([v, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2 = blocks.pop()
            m1, w1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2])
    out: list[float] = []
    for mean, weight in blocks:
        out += [mean] * int(weight)
    return out


def _place(col: list[Item], desired: list[float]) -> None:
    """Centres as close as possible to ``desired`` that keep the column's order and room between its items."""
    offsets = [0.0]
    for a, b in itertools.pairwise(col):
        offsets.append(offsets[-1] + (a.height + b.height) / 2 + ROW_GAP)
    fitted = _isotonic([d - o for d, o in zip(desired, offsets, strict=False)])
    for it, z, o in zip(col, fitted, offsets, strict=False):
        it.y = z + o


def layout(node_rows: Iterable[Sequence], edge_rows: Iterable[Sequence], sweeps: int = 12) -> Layout:
    """The figure's geometry from ``(id, label, layer, description)`` nodes and ``(source, target, mechanism,
    finding)`` edges (the rows of :data:`harness.analysis.findings.FRAMEWORK_NODES` and ``FRAMEWORK_EDGES``).

    Long edges into the same node share their slots (they merge in the first column they cross together), so a
    node fed from far away gets one line through the middle columns, not one per source."""
    nodes = pd.DataFrame(list(node_rows), columns=["id", "label", "layer", "description"])
    edges = pd.DataFrame(list(edge_rows), columns=["source", "target", "mechanism", "finding"])
    edges["edge"] = [f"{s}->{t}" for s, t in zip(edges["source"], edges["target"], strict=False)]
    column = _columns(nodes, edges)
    layer_of = nodes.set_index("id")["layer"].to_dict()

    # items per column: boxes, and one slot per (target, column) that long edges into that target cross
    items: dict[int, list[Item]] = {}
    for n in nodes["id"]:
        if n in STACKED:
            continue
        group = CHOICE_LAYERS.index(layer_of[n]) if layer_of[n] in CHOICE_LAYERS else 0
        items.setdefault(column[n], []).append(Item(n, column[n], True, BOX_H, group))
    slots: dict[str, Item] = {}
    paths: dict[str, list[str]] = {}
    for _, e in edges.iterrows():
        if e["source"] in STACKED or e["target"] in STACKED:
            continue
        chain = [e["source"]]
        for c in range(column[e["source"]] + 1, column[e["target"]]):
            key = f"into {e['target']}@{c}"
            if key not in slots:
                slots[key] = Item(key, c, False, SLOT_H)
                items.setdefault(c, []).append(slots[key])
            chain.append(key)
        paths[e["edge"]] = [*chain, e["target"]]
    segments = sorted({pair for chain in paths.values() for pair in itertools.pairwise(chain)})
    right: dict[str, list[str]] = {}
    left: dict[str, list[str]] = {}
    for a, b in segments:
        right.setdefault(a, []).append(b)
        left.setdefault(b, []).append(a)
    n_columns = max(items) + 1

    # order within columns: barycentre sweeps, then swaps of neighbours that remove crossings; the choices stay
    # in their layer groups, top to bottom (algorithm, software, hardware) or bottom to top with the figure
    # flipped afterwards (a flip keeps every crossing): whichever crosses less
    def sweep(order: dict[int, list[Item]], c: int, neighbours: dict[str, list[str]]) -> None:
        where = {it.key: i for col in order.values() for i, it in enumerate(col)}

        def bary(it: Item) -> float:
            near = [where[k] for k in neighbours.get(it.key, []) if k in where]
            return sum(near) / len(near) if near else where[it.key]

        order[c] = sorted(order[c], key=lambda it: (it.group, bary(it)))

    def transpose(order: dict[int, list[Item]]) -> None:
        improved = True
        while improved:
            improved = False
            for col in order.values():
                for i in range(len(col) - 1):
                    if col[i].group != col[i + 1].group:
                        continue
                    before = _crossings(order, segments)
                    col[i], col[i + 1] = col[i + 1], col[i]
                    if _crossings(order, segments) < before:
                        improved = True
                    else:
                        col[i], col[i + 1] = col[i + 1], col[i]

    best: tuple[int, bool, dict[int, list[Item]]] | None = None
    for flipped in (False, True):
        for it in items[0]:
            rank = CHOICE_LAYERS.index(layer_of[it.key])
            it.group = len(CHOICE_LAYERS) - 1 - rank if flipped else rank
        order = {c: sorted(items[c], key=lambda it: (it.group, it.key)) for c in items}
        for _ in range(sweeps):
            for c in range(1, n_columns):
                sweep(order, c, left)
            for c in range(n_columns - 2, -1, -1):
                sweep(order, c, right)
            transpose(order)
            current = _crossings(order, segments)
            if best is None or current < best[0]:
                best = (current, flipped, {c: list(v) for c, v in order.items()})
    assert best is not None  # noqa: S101
    crossings, flipped, order = best
    if flipped:
        order = {c: col[::-1] for c, col in order.items()}
    for it in order[0]:
        it.group = CHOICE_LAYERS.index(layer_of[it.key])

    # vertical positions: the choices stacked in their groups; every other column placed as close as its order
    # and spacing allow to the mean height of what it joins, in sweeps right and back
    y = TOP
    for i, it in enumerate(order[0]):
        if i and it.group != order[0][i - 1].group:
            y += GROUP_GAP
        it.y = y + it.height / 2
        y += it.height + ROW_GAP
    by_key = {it.key: it for col in order.values() for it in col}
    neighbours = {k: left.get(k, []) + right.get(k, []) for k in by_key}
    for c in range(1, n_columns):
        _place(
            order[c],
            [
                sum(by_key[k].y for k in left.get(it.key, [])) / max(1, len(left.get(it.key, []))) or TOP
                for it in order[c]
            ],
        )
    for _ in range(sweeps):
        for c in list(range(n_columns - 1, 0, -1)) + list(range(1, n_columns)):
            _place(
                order[c],
                [
                    sum(by_key[k].y for k in neighbours[it.key]) / len(neighbours[it.key])
                    if neighbours[it.key]
                    else it.y
                    for it in order[c]
                ],
            )
    top = min(it.y - it.height / 2 for col in order.values() for it in col)
    if top < TOP:
        for it in by_key.values():
            it.y += TOP - top
    height = max(it.y + it.height / 2 for it in by_key.values()) + 20

    def x_of(c: int) -> float:
        return 10 + c * (BOX_W + COL_GAP)

    node_out = []
    for _, n in nodes.iterrows():
        if n["id"] in STACKED:
            continue
        it = by_key[n["id"]]
        x = x_of(it.column)
        node_out.append(
            {
                **n.to_dict(),
                "column": it.column,
                "x": x,
                "x2": x + BOX_W,
                "y": it.y - BOX_H / 2,
                "y2": it.y + BOX_H / 2,
                "cx": x + BOX_W / 2,
                "cy": it.y,
            }
        )
    for node, above in STACKED.items():
        if node not in set(nodes["id"]) or above not in by_key:
            continue
        base = next(r for r in node_out if r["id"] == above)
        cy = base["y2"] + 28 + BOX_H / 2
        n = nodes.set_index("id").loc[node]
        node_out.append(
            {
                "id": node,
                "label": n["label"],
                "layer": n["layer"],
                "description": n["description"],
                "column": base["column"],
                "x": base["x"],
                "x2": base["x2"],
                "y": cy - BOX_H / 2,
                "y2": cy + BOX_H / 2,
                "cx": base["cx"],
                "cy": cy,
            }
        )
        height = max(height, cy + BOX_H / 2 + 20)
    node_frame = pd.DataFrame(node_out)
    node_frame["text"] = node_frame["label"].map(_wrap)
    # a two-line label's first line sits half a line above the centre (Vega places lines below the first)
    node_frame["text_y"] = node_frame["cy"] - 6.0 * node_frame["text"].str.count("\n")
    box = node_frame.set_index("id")

    points, arrows = [], []
    for _, e in edges.iterrows():
        meta = {
            "edge": e["edge"],
            "source": e["source"],
            "target": e["target"],
            "mechanism": e["mechanism"],
            "finding": e["finding"],
        }
        a, b = box.loc[e["source"]], box.loc[e["target"]]
        vertical = e["target"] in STACKED or e["source"] in STACKED
        if vertical:  # a short arrow down between stacked boxes
            pts = [(a["cx"], a["y2"]), (b["cx"], b["y"] - 1)]
            arrows.append(meta | {"x": b["cx"], "y": b["y"] - 5, "angle": 90.0})
        else:
            pts = [(a["x2"], a["cy"]), (a["x2"] + 6, a["cy"])]
            for key in paths[e["edge"]][1:-1]:
                it = by_key[key]
                pts += [(x_of(it.column) - 6, it.y), (x_of(it.column) + BOX_W + 6, it.y)]
            pts += [(b["x"] - 10, b["cy"]), (b["x"] - 1, b["cy"])]
            arrows.append(meta | {"x": b["x"] - 5, "y": b["cy"], "angle": 0.0})
        for i, (x, y_) in enumerate(pts):
            points.append(meta | {"order": i, "x": float(x), "y": float(y_), "vertical": vertical})
    headers = [("Choices", x_of(0) + BOX_W / 2)]
    for layer, title in (("latent", "Latent metrics"), ("end", "End metrics")):
        cols = sorted({int(c) for c in node_frame.loc[node_frame["layer"] == layer, "column"]})
        if cols:
            headers.append((title, (x_of(cols[0]) + x_of(cols[-1]) + BOX_W) / 2))
    arrow_frame = pd.DataFrame(arrows).drop_duplicates(["target", "x", "y"])
    return Layout(
        node_frame,
        pd.DataFrame(points),
        arrow_frame,
        x_of(n_columns - 1) + BOX_W + 10,
        height,
        int(crossings),
        n_columns,
        headers,
    )


def framework_figure(
    node_rows: Iterable[Sequence],
    edge_rows: Iterable[Sequence],
    found: Iterable = (),
    finding_titles: dict[str, str] | None = None,
):
    """The framework drawn from its nodes and edges; ``found`` (findings) name each edge's evidence in tooltips."""
    import altair as alt

    geo = layout(node_rows, edge_rows)
    titles = dict(finding_titles or {}) | {f.id: f.title for f in found}
    for frame in (geo.edges, geo.arrows):
        frame["evidence"] = frame["finding"].map(lambda fid: titles.get(fid, "") if fid else "").fillna("")
        frame["evidence"] = frame["evidence"].where(frame["finding"].notna(), "an identity or a known mechanism")
        frame["edge_words"] = [
            f"{_plain(s, geo)} -> {_plain(t, geo)}" for s, t in zip(frame["source"], frame["target"], strict=False)
        ]
    xs = alt.Scale(domain=[0, geo.width], nice=False, zero=False)
    ys = alt.Scale(domain=[0, geo.height], nice=False, zero=False, reverse=True)
    x = alt.X("x:Q", scale=xs, axis=None)
    y = alt.Y("y:Q", scale=ys, axis=None)
    tips = [
        alt.Tooltip("edge_words:N", title="Edge"),
        alt.Tooltip("mechanism:N", title="Mechanism"),
        alt.Tooltip("evidence:N", title="Shown in the data by"),
    ]
    dashed = alt.condition("datum.finding == null", alt.value([4, 3]), alt.value([1, 0]))
    curves = (
        alt.Chart(geo.edges[~geo.edges["vertical"]])
        .mark_line(interpolate="monotone", strokeWidth=1.6, color="#6b6b6b", opacity=0.75)
        .encode(x=x, y=y, detail="edge:N", order="order:Q", strokeDash=dashed, tooltip=tips)
    )
    straight = (
        alt.Chart(geo.edges[geo.edges["vertical"]])
        .mark_line(strokeWidth=1.6, color="#6b6b6b", opacity=0.75)
        .encode(x=x, y=y, detail="edge:N", order="order:Q", strokeDash=dashed, tooltip=tips)
    )
    heads = (
        alt.Chart(geo.arrows)
        .mark_point(shape="triangle-right", filled=True, size=55, color="#555", opacity=0.9)
        .encode(x=x, y=y, angle=alt.Angle("angle:Q", scale=None), tooltip=tips)
    )
    node_tips = [
        alt.Tooltip("label:N", title="Node"),
        alt.Tooltip("layer_name:N", title="Layer"),
        alt.Tooltip("description:N", title="What it is"),
    ]
    boxes_data = geo.nodes.assign(layer_name=geo.nodes["layer"].map(LAYER_NAMES))
    layer_scale = alt.Scale(domain=[LAYER_NAMES[k] for k in LAYER_FILL], range=list(LAYER_FILL.values()))
    stroke_scale = alt.Scale(domain=[LAYER_NAMES[k] for k in LAYER_STROKE], range=list(LAYER_STROKE.values()))
    boxes = (
        alt.Chart(boxes_data)
        .mark_rect(cornerRadius=6, strokeWidth=1.4)
        .encode(
            x=alt.X("x:Q", scale=xs, axis=None),
            x2="x2:Q",
            y=alt.Y("y:Q", scale=ys, axis=None),
            y2="y2:Q",
            fill=alt.Fill(
                "layer_name:N",
                scale=layer_scale,
                title="Layer",
                legend=alt.Legend(orient="bottom", direction="horizontal"),
            ),
            stroke=alt.Stroke("layer_name:N", scale=stroke_scale, legend=None),
            tooltip=node_tips,
        )
    )
    labels = (
        alt.Chart(boxes_data)
        .mark_text(fontSize=11, lineBreak="\n", lineHeight=12, baseline="middle", color="#222")
        .encode(
            x=alt.X("cx:Q", scale=xs, axis=None),
            y=alt.Y("text_y:Q", scale=ys, axis=None),
            text="text:N",
            tooltip=node_tips,
        )
    )
    header_data = pd.DataFrame([{"title": t, "x": x_, "y": 16.0} for t, x_ in geo.headers])
    header = (
        alt.Chart(header_data)
        .mark_text(fontSize=13, fontWeight="bold", color="#222")
        .encode(x=alt.X("x:Q", scale=xs, axis=None), y=alt.Y("y:Q", scale=ys, axis=None), text="title:N")
    )
    return (
        alt.layer(curves, straight, heads, boxes, labels, header)
        .properties(width=geo.width, height=geo.height)
        .configure_view(stroke=None)
    )


def _plain(node_id: str, geo: Layout) -> str:
    labels = geo.nodes.set_index("id")["label"]
    return str(labels.get(node_id, node_id))
