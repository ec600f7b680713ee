"""Node colours, shared by the graph panel, the SVG/PNG export and the .dot export,
so every picture of a graph reads the same way."""
from __future__ import annotations

# Fill, border for each kind of node: colours that survive a washed-out projector.
STYLE = {
    "leaf": ("#c9f2c7", "#2e7d32"),  # leaf tensor that requires grad
    "leaf_nograd": ("#eeeeee", "#757575"),  # tensor with requires_grad=False
    "nonleaf": ("#cfe2ff", "#1f5fbf"),  # tensor made by an op
    "op": ("#fff4d6", "#8a6d1d"),  # autograd node (grad_fn)
    "accumulate": ("#f1e3ff", "#6a3d9a"),  # AccumulateGrad, where a leaf's grad lands
    "saved": ("#ffe0c2", "#d35400"),
    "freed": ("#ffffff", "#9e9e9e"),
    "cut": ("#eeeeee", "#c62828"),  # made by detach() or under no_grad: no history
    "module": ("#e0f2f1", "#00695c"),  # a collapsed nn.Module: its ops in one box
    "array": ("#e8eaf6", "#3949ab"),  # a NumPy array
}
LEGEND = [("leaf", "leaf (requires_grad)"), ("leaf_nograd", "no grad"),
          ("nonleaf", "non-leaf"), ("op", "grad_fn"),
          ("accumulate", "AccumulateGrad"), ("saved", "saved tensor"),
          ("cut", "cut off (detach / no_grad)"), ("module", "module (double-click opens)"),
          ("array", "NumPy array")]
# Edges autograd does not draw: dashed "shares storage" (base -> view), dotted "data"
# (a torch call without autograd: named input -> named output).
EDGE_DASH = {"view": (6, 4), "data": (2, 3)}
EDGE_COLOUR = {"view": "#3949ab", "data": "#6d6d6d"}
RETAINS_GRAD_BORDER = "#c79100"
# A tensor that is not on the CPU carries a stripe down its left side in its device's
# colour (the label says the device too): on a projector, where the tensors live reads
# at a glance. GPUs take the colours in turn; the CPU, the common case, has none.
GPU_COLOURS = ["#76b900", "#e65100", "#0097a7", "#c2185b", "#5e35b1", "#827717"]
DEVICE_COLOURS = {"mps": "#607d8b", "meta": "#546e7a", "xpu": "#0071c5"}
OTHER_DEVICE = "#5d4037"
STRIPE_W = 8.0


def device_colour(device: str | None) -> str | None:
    """The stripe colour of a tensor on `device` ("cuda:1", "meta"); None on the CPU."""
    if not device or device == "cpu":
        return None
    kind, _, index = device.partition(":")
    if kind == "cuda":
        return GPU_COLOURS[int(index or 0) % len(GPU_COLOURS)]
    return DEVICE_COLOURS.get(kind, OTHER_DEVICE)


def graph_devices(graph) -> list[str]:
    """The devices other than the CPU that the graph's tensors are on, in order met."""
    return list(dict.fromkeys(n.device for n in graph.nodes if n.kind == "tensor" and device_colour(n.device)))


def style_of(node) -> str:
    if node.kind in ("module", "array"):
        return node.kind
    if node.kind == "op":
        return "accumulate" if node.name == "AccumulateGrad" else "op"
    if node.kind == "saved":
        return "freed" if node.freed else "saved"
    if getattr(node, "cut", None):
        return "cut"
    if not node.requires_grad:
        return "leaf_nograd"
    return "leaf" if node.is_leaf else "nonleaf"
