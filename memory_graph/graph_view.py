"""Pictures of the entity graph: an interactive HTML view that works offline, and a static PNG.

The interactive view is vis-network, read from the copy the ``pyvis`` package installs (the
``notebooks`` extra) and inlined, with its stylesheet, into a small page of our own: nothing is
fetched at view time, so it works with no network. pyvis's own templates load Bootstrap and
tom-select from a CDN, so they are not used. The static picture is matplotlib over a networkx
layout.

Both take the graphs of :mod:`memory_graph.analysis` (nodes with ``name``, ``label``,
``mentions``; edges with ``predicate``, ``weight``, ``evidence``) and colour entities by label
with the same palette.
"""

from __future__ import annotations

import html
import json
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import networkx as nx

from memory_graph.errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Colours of the usual labels; others get the next colour of ``_PALETTE`` (in sorted order).
LABEL_COLORS = {
    "PERSON": "#4e79a7",
    "ORG": "#f28e2b",
    "GPE": "#e15759",
    "LOC": "#76b7b2",
    "DATE": "#59a14f",
    "TIME": "#8cd17d",
    "MONEY": "#edc948",
    "EVENT": "#b07aa1",
    "PRODUCT": "#ff9da7",
    "EMAIL": "#9c755f",
    "URL": "#86bcb6",
    "PHONE": "#d4a6c8",
    "CONCEPT": "#bab0ac",
}
_PALETTE = ("#499894", "#f1ce63", "#d37295", "#a0cbe8", "#ffbe7d", "#b6992d", "#fabfd2", "#79706e", "#d7b5a6")
_VIS_VERSION = re.compile(r"vis-(\d+(?:\.\d+)*)$")


def label_colors(labels: Iterable[str]) -> dict[str, str]:
    """The colour (``#rrggbb``) of each entity label, the same in every picture.

    Args:
        labels: the labels to colour.
    """
    labels = list(labels)
    out = {}
    others = sorted({label for label in labels if label not in LABEL_COLORS})
    for label in labels:
        out[label] = LABEL_COLORS.get(label) or _PALETTE[others.index(label) % len(_PALETTE)]
    return out


# -- interactive HTML ----------------------------------------------------------------------------


@cache
def vis_assets() -> tuple[str, str]:
    """vis-network's JavaScript and CSS from the installed pyvis package (newest bundled version)."""
    try:
        lib = resources.files("pyvis") / "lib"
    except ModuleNotFoundError as exc:
        raise ConfigError(
            "the interactive graph view bundles vis-network from the pyvis package, which is not installed; "
            "pip install 'memory-graph[notebooks]'"
        ) from exc
    found = []
    for entry in lib.iterdir():
        match = _VIS_VERSION.match(entry.name)
        if match and (entry / "vis-network.min.js").is_file():
            found.append((tuple(int(p) for p in match.group(1).split(".")), entry))
    if not found:
        raise ConfigError(f"no vis-network.min.js under {lib}; reinstall pyvis (pip install 'memory-graph[notebooks]')")
    folder = max(found, key=lambda item: item[0])[1]
    js = (folder / "vis-network.min.js").read_text(encoding="utf-8")
    css_file = folder / "vis-network.css"
    css = css_file.read_text(encoding="utf-8") if css_file.is_file() else ""
    # Inlined into <script>/<style>: a closing tag inside would end the element early.
    if "</script" in js.lower() or "</style" in css.lower():
        raise ConfigError(f"the vis-network files under {folder} cannot be inlined safely")
    return js, css


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
</head>
<body>
{fragment}
</body>
</html>
"""

_FRAGMENT = """<div class="mg-graph-view" style="font-family: sans-serif;">
<style>
{vis_css}
.mg-graph-view .vis-tooltip {{ white-space: pre-wrap; max-width: 420px; }}
.mg-graph-legend {{ font-size: 12px; margin-top: 4px; }}
.mg-graph-legend span {{ display: inline-block; margin-right: 12px; }}
.mg-graph-legend i {{ display: inline-block; width: 10px; height: 10px; border-radius: 5px; margin-right: 4px; }}
</style>
{heading}<div id="{div_id}" style="width: 100%; height: {height}px; border: 1px solid #ddd;"></div>
<div class="mg-graph-legend">{legend}</div>
<script type="text/javascript">
// vis-network {vis_note}, inlined (no network needed). The wrapper hides AMD/CommonJS loaders
// (a notebook's require.js) so the library always defines the global `vis`.
(function (define, exports, module) {{
{vis_js}
}})();
</script>
<script type="text/javascript">
(function () {{
  var data = {data};
  var container = document.getElementById("{div_id}");
  new vis.Network(container, {{nodes: new vis.DataSet(data.nodes), edges: new vis.DataSet(data.edges)}}, data.options);
}})();
</script>
</div>
"""


def graph_html(
    graph: nx.Graph[Any],
    *,
    title: str | None = None,
    height: int = 600,
    center: int | None = None,
    fragment: bool = False,
    physics: bool = True,
) -> str:
    """A self-contained interactive view of an entity graph: drag, zoom, hover for evidence.

    The page inlines vis-network (from the installed ``pyvis`` package) and references no remote
    URL, so it works offline, saved to a file or shown inline in a notebook
    (``IPython.display.HTML(graph_html(g, fragment=True))``).

    Args:
        graph: a graph from :mod:`memory_graph.analysis` (``to_networkx``, ``neighbourhood``, ...).
        title: a heading (and the page title).
        height: the drawing's height in pixels.
        center: an entity id to highlight (besides nodes at ``hop`` 0); the graph's ``center``
            attribute when omitted.
        fragment: return a ``<div>`` to embed instead of a whole HTML document.
        physics: let the layout settle with a force simulation (off: a static random layout).

    Returns:
        HTML text.

    Raises:
        ConfigError: pyvis (which carries vis-network) is not installed.
    """
    vis_js, vis_css = vis_assets()
    data = _vis_data(graph, center=graph.graph.get("center") if center is None else center, physics=physics)
    colors = label_colors(sorted({str(d.get("label", "")) for _, d in graph.nodes(data=True)}))
    legend = "".join(
        f'<span><i style="background: {color};"></i>{html.escape(label or "?")}</span>'
        for label, color in colors.items()
    )
    heading = f'<h3 style="margin: 4px 0;">{html.escape(title)}</h3>\n' if title else ""
    version = re.search(r"@version\s+([\w.]+)", vis_js[:2000])
    body = _FRAGMENT.format(
        vis_css=vis_css,
        heading=heading,
        div_id=f"mg-graph-{uuid.uuid4().hex[:12]}",
        height=int(height),
        legend=legend,
        vis_note=version.group(1) if version else "",
        vis_js=vis_js,
        data=_script_json(data),
    )
    if fragment:
        return body
    return _PAGE.format(title=html.escape(title or "memory graph"), fragment=body)


def write_graph_html(
    graph: nx.Graph[Any],
    path: str | Path,
    *,
    title: str | None = None,
    height: int = 600,
    center: int | None = None,
    physics: bool = True,
) -> Path:
    """Write :func:`graph_html`'s page to ``path`` (open it in any browser, no network needed).

    Args:
        graph: a graph from :mod:`memory_graph.analysis`.
        path: the ``.html`` file to write.
        title: a heading and page title.
        height: the drawing's height in pixels.
        center: an entity id to highlight; the graph's ``center`` attribute when omitted.
        physics: let the layout settle with a force simulation.

    Returns:
        The path written.

    Raises:
        ConfigError: pyvis is not installed, or the file cannot be written.
    """
    path = Path(path)
    page = graph_html(graph, title=title, height=height, center=center, physics=physics)
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write ({exc.strerror})") from exc
    return path


def _vis_data(graph: nx.Graph[Any], *, center: Any, physics: bool) -> dict[str, Any]:
    colors = label_colors(sorted({str(d.get("label", "")) for _, d in graph.nodes(data=True)}))
    nodes = []
    for node, d in graph.nodes(data=True):
        label = str(d.get("label", ""))
        mentions = d.get("mentions", 1)
        tooltip = f"{d.get('name', node)} ({label})\n{mentions} mention{'s' if mentions != 1 else ''}"
        if "hop" in d:
            tooltip += f"\n{d['hop']} hop{'s' if d['hop'] != 1 else ''} from the centre"
        nodes.append(
            {
                "id": node,
                "label": str(d.get("name", node)),
                "title": tooltip,
                "value": float(mentions or 1),
                "color": colors[label],
                "borderWidth": 4 if _is_focus(node, d, center) else 1,
                "font": {"size": 18 if _is_focus(node, d, center) else 14},
            }
        )
    parallel: dict[tuple[Any, Any], int] = defaultdict(int)
    edges = []
    for u, v, d in graph.edges(data=True):
        pair = (min(u, v), max(u, v))
        nth = parallel[pair]
        parallel[pair] += 1
        evidence = str(d.get("evidence", "") or "")
        edges.append(
            {
                "from": u,
                "to": v,
                "label": str(d.get("predicate", "")),
                "title": f"{d.get('predicate', '')} (weight {d.get('weight', 1)})"
                + (f"\n{evidence}" if evidence else ""),
                "value": float(d.get("weight", 1) or 1),
                "arrows": "to",
                # Parallel relations between two entities get their own curve instead of overlapping.
                "smooth": {"enabled": True, "type": "curvedCW", "roundness": 0.15 * nth},
            }
        )
    options = {
        "nodes": {"shape": "dot", "scaling": {"min": 8, "max": 32}},
        "edges": {
            "color": {"color": "#9a9a9a", "highlight": "#333333"},
            "font": {"size": 10, "align": "middle"},
            "scaling": {"min": 1, "max": 6},
        },
        "interaction": {"hover": True, "tooltipDelay": 120},
        "physics": {"enabled": physics, "stabilization": {"iterations": 200}, "barnesHut": {"springLength": 140}},
    }
    return {"nodes": nodes, "edges": edges, "options": options}


def _script_json(value: Any) -> str:
    """JSON that is safe inside a <script> element (entity names are user text)."""
    text = json.dumps(value, ensure_ascii=False)
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text


# -- static picture ------------------------------------------------------------------------------


def draw_graph(
    graph: nx.Graph[Any],
    *,
    ax: Axes | None = None,
    title: str | None = None,
    center: int | None = None,
    seed: int = 7,
    edge_labels: bool | None = None,
    path: str | Path | None = None,
) -> Figure:
    """Draw an entity graph with matplotlib: nodes coloured by label and sized by mentions.

    Parallel relations between two entities are drawn as one arrow labelled with every predicate.

    Args:
        graph: a graph from :mod:`memory_graph.analysis`.
        ax: the axes to draw on; a new figure when omitted.
        title: the axes title.
        center: an entity id to highlight and pin in the middle (nodes at ``hop`` 0 are highlighted
            too); the graph's ``center`` attribute when omitted.
        seed: the layout's random seed (same seed, same picture).
        edge_labels: write predicates on the arrows; by default only for graphs of at most 60 relations.
        path: also save the figure there (PNG, or any format matplotlib infers from the suffix).

    Returns:
        The matplotlib figure (shown inline by a notebook's ``%matplotlib inline``).
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    if ax is None:
        _, ax = plt.subplots(figsize=(11, 8))
    figure = cast("Figure", ax.get_figure())  # an Axes of a figure, not of a subfigure
    center = graph.graph.get("center") if center is None else center
    simple: nx.DiGraph[Any] = nx.DiGraph()
    simple.add_nodes_from(graph.nodes(data=True))
    for u, v, d in graph.edges(data=True):
        if simple.has_edge(u, v):
            simple[u][v]["predicates"].append(str(d.get("predicate", "")))
            simple[u][v]["weight"] += float(d.get("weight", 1) or 1)
        else:
            simple.add_edge(u, v, predicates=[str(d.get("predicate", ""))], weight=float(d.get("weight", 1) or 1))
    n = max(1, simple.number_of_nodes())
    if center is not None and center in simple:
        pos = nx.spring_layout(simple, seed=seed, k=2.0 / n**0.5, pos={center: (0.0, 0.0)}, fixed=[center])
    else:
        pos = nx.spring_layout(simple, seed=seed, k=2.0 / n**0.5)
    labels = [str(d.get("label", "")) for _, d in simple.nodes(data=True)]
    colors = label_colors(sorted(set(labels)))
    nx.draw_networkx_edges(
        simple,
        pos,
        ax=ax,
        edge_color="#9a9a9a",
        width=[min(4.0, 0.8 + 0.4 * d["weight"]) for _, _, d in simple.edges(data=True)],
        arrows=True,
        arrowsize=10,
        node_size=[_node_size(d) for _, d in simple.nodes(data=True)],
        connectionstyle="arc3,rad=0.08",
    )
    nx.draw_networkx_nodes(
        simple,
        pos,
        ax=ax,
        node_color=[colors[label] for label in labels],
        node_size=[_node_size(d) for _, d in simple.nodes(data=True)],
        edgecolors=["#222222" if _is_focus(node, d, center) else "#ffffff" for node, d in simple.nodes(data=True)],
        linewidths=[2.5 if _is_focus(node, d, center) else 0.8 for node, d in simple.nodes(data=True)],
    )
    nx.draw_networkx_labels(
        simple, pos, ax=ax, labels={node: str(d.get("name", node)) for node, d in simple.nodes(data=True)}, font_size=8
    )
    if edge_labels if edge_labels is not None else simple.number_of_edges() <= 60:
        nx.draw_networkx_edge_labels(
            simple,
            pos,
            ax=ax,
            edge_labels={(u, v): _short(", ".join(d["predicates"])) for u, v, d in simple.edges(data=True)},
            font_size=6,
            font_color="#555555",
            rotate=False,
            bbox={"alpha": 0.0},
        )
    handles = [
        Line2D([], [], marker="o", linestyle="", markersize=8, color=color, label=label or "?")
        for label, color in colors.items()
    ]
    if handles:
        ax.legend(handles=handles, loc="upper left", fontsize=8, frameon=False)
    if title:
        ax.set_title(title)
    ax.set_axis_off()
    if path is not None:
        figure.savefig(path, dpi=120, bbox_inches="tight")
    return figure


def _is_focus(node: Any, d: dict[str, Any], center: Any) -> bool:
    """The centre of a neighbourhood, or a query's linked entity in an explanation graph (hop 0)."""
    return bool(node == center or d.get("hop") == 0)


def _node_size(d: dict[str, Any]) -> float:
    return 200.0 + 90.0 * min(float(d.get("mentions", 1) or 1), 20.0)


def _short(text: str, limit: int = 32) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
