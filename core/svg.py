"""A laid-out graph as SVG text, written directly (no Qt): the headless `.svg` export.

It draws what the graph panel draws, from the same numbers: each node is a
(rounded) rectangle at its `Layout` box in the colours of `core.style.STYLE`, with
the lines of `core.labels.node_lines` centred in it (the first line bold for tensors
and modules), edges are the cubic curves of `core.layout.edge_rows` (bottom of the
source to the top of the target, down the layout's lanes where they skip rows, with
an arrowhead), and the gradient badges of a replayed backward sit in the room the
layout kept under their node.

Kept small and fast for tens of thousands of nodes: the colours are CSS classes, the
edges are a few long `<path>`s, the labels share one font group, and coordinates
carry one decimal.
"""
from __future__ import annotations

import re

from .labels import badge_text, node_lines
from .layout import DEFAULT_METRICS, Box, Layout, Metrics
from .style import EDGE_COLOUR, EDGE_DASH, RETAINS_GRAD_BORDER, STRIPE_W, STYLE, device_colour, style_of

# The panel's colours that are not node colours (they live in gui/theme.py, which is Qt).
EDGE = "#555555"
TEXT = "#111111"
BADGE_FILL = "#fff8e1"
BADGE_BORDER = "#ffb74d"  # theme.STEP_DONE
BADGE_TEXT = "#6d4c41"
BADGE_TEXT_QUIET = "#9e9e9e"
FONT = "monospace"  # a list ("DejaVu Sans Mono, monospace") makes QtSvg fall back to a sans font
MARGIN = 30.0  # around the drawing, as the panel's scene rect
BORDER_W = 1.6  # the panel's node border width
EDGE_W = 1.4
EDGES_PER_PATH = 2000

_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _esc(text: str) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _INVALID_XML.sub("\ufffd", text)


def _num(v: float) -> str:
    s = f"{v:.1f}"
    return s[:-2] if s.endswith(".0") else s


def _font_px(metrics: Metrics) -> int:
    """The label font's pixel size: as `gui.theme.graph_font`, the largest size whose
    monospace advance (0.602 em for DejaVu Sans Mono) fits `char_w`."""
    size = int(metrics.char_w * 14 / 8)
    while size > 6 and size * 0.602 > metrics.char_w:
        size -= 1
    return size


def _css(font_px: int) -> str:
    rules = [f".e{{fill:none;stroke:{EDGE};stroke-width:{EDGE_W}}}",
             f".n{{stroke-width:{BORDER_W}}}", ".w{stroke-width:3.2}",
             ".d{stroke-dasharray:6.4 3.2}", ".b{font-weight:bold}",
             f".g{{fill:{BADGE_FILL};stroke:{BADGE_BORDER};stroke-width:1.5}}",
             f".q{{fill:{BADGE_TEXT_QUIET}}}"]
    rules += [f".{k}{{fill:{fill};stroke:{border}}}" for k, (fill, border) in STYLE.items()]
    rules.append(f".r{{stroke:{RETAINS_GRAD_BORDER}}}")  # after STYLE: it wins
    return "".join(rules)


def to_svg(graph, layout: Layout, badges: dict | None = None, metrics: Metrics = DEFAULT_METRICS,
           title: str = "Torchscope autograd graph") -> str:
    """SVG text of `graph` drawn at `layout`. `badges`: node id -> `Badge` (what
    `step_view` shows at a step), each drawn in `layout.below[node id]`."""
    boxes = layout.boxes
    badges = {k: b for k, b in (badges or {}).items() if k in layout.below}
    every = list(boxes.values()) + [layout.below[k] for k in badges] + layout.lanes
    if every:
        left = min(b.x - b.w / 2 for b in every) - MARGIN
        top = min(b.y - b.h / 2 for b in every) - MARGIN
        width = max(b.x + b.w / 2 for b in every) + MARGIN - left
        height = max(b.y + b.h / 2 for b in every) + MARGIN - top
    else:
        left, top, width, height = 0.0, 0.0, 2 * MARGIN, 2 * MARGIN
    font_px = _font_px(metrics)
    baseline = 0.35 * font_px  # from a line's centre to its baseline
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n',
           f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{_num(width)}" '
           f'height="{_num(height)}" viewBox="{_num(left)} {_num(top)} {_num(width)} {_num(height)}">\n',
           f"<title>{_esc(title)}</title>\n<style>{_css(font_px)}</style>\n",
           f'<rect x="{_num(left)}" y="{_num(top)}" width="{_num(width)}" height="{_num(height)}" '
           'fill="#fff"/>\n']

    # Edges under the nodes, as in the panel: a few long paths.
    num = _num
    segs, extra = [], {}
    for e in graph.edges:
        src, dst = boxes.get(e.src), boxes.get(e.dst)
        if src is None or dst is None:
            continue
        d = []
        for x0, y0, x1, y1, bend, tip in layout.edge_rows(e.src, e.dst):
            a, b, c = num(x0), num(x1), num(y1)
            d.append(f"M{a} {num(y0)}C{a} {num(y0 + bend)} {b} {num(y1 - bend)} {b} {c}")
            if tip:
                d.append(f"M{num(x1 - 5)} {num(y1 - 9)}L{b} {c}L{num(x1 + 5)} {num(y1 - 9)}")
        (segs if e.kind is None else extra.setdefault(e.kind, [])).append("".join(d))
    for i in range(0, len(segs), EDGES_PER_PATH):
        out.append(f'<path class="e" d="{"".join(segs[i:i + EDGES_PER_PATH])}"/>\n')
    for kind, kind_segs in extra.items():  # view and data edges: dashed, their own colour
        dash = " ".join(str(v) for v in EDGE_DASH[kind])
        out.append(f'<path class="e" stroke="{EDGE_COLOUR[kind]}" stroke-dasharray="{dash}" '
                   f'd="{"".join(kind_segs)}"/>\n')

    # Node boxes, then their labels in one text group.
    line_h, pad_y = metrics.line_h, metrics.pad_y
    labels = []
    out.append('<g class="n">\n')
    for n in graph.nodes:
        box = boxes.get(n.id)
        if box is None:
            continue
        kind = n.kind
        cls = style_of(n)
        if kind == "tensor" and n.retains_grad:
            cls += " w r"
        elif kind == "module":
            cls += " w"
        if (kind == "saved" and n.freed) or (kind == "tensor" and n.cut):
            cls += " d"
        x0, y0 = box.x - box.w / 2, box.y - box.h / 2
        radius = "14" if kind == "op" else "5"
        out.append(f'<rect class="{cls}" x="{num(x0)}" y="{num(y0)}" width="{num(box.w)}" '
                   f'height="{num(box.h)}" rx="{radius}"/>\n')
        stripe = device_colour(n.device) if kind == "tensor" else None
        if stripe:  # not on the CPU: its device's colour down the left side
            out.append(f'<rect x="{num(x0 + BORDER_W)}" y="{num(y0 + BORDER_W)}" width="{num(STRIPE_W)}" '
                       f'height="{num(box.h - 2 * BORDER_W)}" fill="{stripe}" stroke="none"/>\n')
        cx = num(box.x)
        first = y0 + pad_y + line_h / 2 + baseline
        for i, line in enumerate(node_lines(n)):
            bold = ' class="b"' if i == 0 and kind in ("tensor", "module") else ""
            labels.append(f'<text{bold} x="{cx}" y="{num(first + i * line_h)}">{_esc(line)}</text>\n')
    out.append("</g>\n")
    out.append(f'<g font-family="{FONT}" font-size="{font_px}" text-anchor="middle" fill="{TEXT}">\n')
    out.extend(labels)
    out.append("</g>\n")

    if badges:  # the gradients under their nodes, as at the end of a replay
        out.append('<g class="g">\n')
        texts = []
        for node_id, badge in badges.items():
            room: Box = layout.below[node_id]
            out.append(f'<rect x="{num(room.x - room.w / 2)}" y="{num(room.y - room.h / 2)}" '
                       f'width="{num(room.w)}" height="{num(room.h)}" rx="2"/>\n')
            quiet = ' class="q"' if badge.kind == "not_kept" else ""
            texts.append(f'<text{quiet} x="{num(room.x)}" y="{num(room.y + baseline)}">'
                         f"{_esc(badge_text(badge))}</text>\n")
        out.append("</g>\n")
        out.append(f'<g font-family="{FONT}" font-size="{max(9, font_px - 1)}" font-weight="bold" '
                   f'text-anchor="middle" fill="{BADGE_TEXT}">\n')
        out.extend(texts)
        out.append("</g>\n")
    out.append("</svg>\n")
    return "".join(out)
