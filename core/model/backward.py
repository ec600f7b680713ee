"""A recorded backward pass as data, and what the graph shows at each of its steps."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .graph import Graph, json_safe


@dataclass
class GradInfo:
    """One gradient tensor as the engine passed it."""
    shape: list[int]
    dtype: str
    norm: float
    min: float
    max: float
    values: np.ndarray | None = None  # all of it while small (VALUES_LIMIT), else None


@dataclass
class BackwardStep:
    index: int
    node: str  # id of the op node in the Graph traced before the backward
    name: str  # its class name
    grad_outputs: list[GradInfo | None]  # flowed in: gradients w.r.t. the node's outputs
    grad_inputs: list[GradInfo | None]  # flowed out, one per next_functions entry (None: none)
    leaf: str | None = None  # AccumulateGrad: the tensor node whose .grad this step set
    leaf_grad: GradInfo | None = None  # that .grad right after the step


@dataclass
class BackwardTrace:
    root: str  # tensor node id
    root_name: str
    steps: list[BackwardStep] = field(default_factory=list)
    retain_graph: bool = False
    create_graph: bool = False
    error: str | None = None  # the engine's own message when it refused
    # Which call of the script this is (a training loop makes many; see
    # RunResult.backward_calls). A backward asked for by the window: None, 1, 1.
    line: int | None = None  # the script's line that made the call
    call: int = 1  # k: the call's number, 1-based, among all the script's calls
    calls: int = 1  # N: how many calls the script made (also those past the recording cap)
    kind: str = "backward"  # "backward" (tensor.backward, autograd.backward) or "grad" (autograd.grad)


def trace_to_dict(trace: BackwardTrace) -> list[dict]:
    """The export's `"backward"` list: one entry per executed node, in engine order."""
    def values(infos):
        return [None if g is None or g.values is None else json_safe(g.values) for g in infos]
    return [{"node": s.node, "name": s.name, "grad_inputs": values(s.grad_inputs),
             "grad_outputs": values(s.grad_outputs)} for s in trace.steps]


@dataclass
class Badge:
    """The gradient written under a node at one step."""
    grad: GradInfo | None
    kind: str  # "flow": reached this op; "grad": a tensor's .grad; "not_kept": non-leaf, not retained


@dataclass
class StepView:
    """What the graph shows at one step of a recorded backward."""
    current: str | None = None  # the node the engine ran at this step
    active_edges: list[tuple[str, str]] = field(default_factory=list)  # gradient leaving it now
    done_edges: list[tuple[str, str]] = field(default_factory=list)  # gradient that already flowed
    badges: dict[str, Badge] = field(default_factory=dict)  # node id -> its gradient
    pending_leaves: set[str] = field(default_factory=set)  # leaves whose .grad is not reached yet


@dataclass
class StepInfo:
    """What one step adds to the drawing: the node run, the edges its gradient came
    in by, and the badges it sets (each node's badge is set by exactly one step)."""
    node: str
    edges: list[tuple[str, str]]
    badges: dict[str, Badge]
    leaf: str | None = None  # the leaf whose .grad this step set


def step_plan(graph: Graph, trace: BackwardTrace) -> list[StepInfo]:
    """Every step's additions, in one pass over the graph: stepping then costs only
    the difference between two steps, however big the graph."""
    into: dict[str, list[str]] = {}
    outputs: dict[str, list[str]] = {}
    kinds = {n.id: n for n in graph.nodes}
    for e in graph.edges:
        if kinds.get(e.src) is not None and kinds[e.src].kind != "saved":
            into.setdefault(e.dst, []).append(e.src)
        if kinds.get(e.dst) is not None and kinds[e.dst].kind == "tensor":
            outputs.setdefault(e.src, []).append(e.dst)
    plan = []
    for step in trace.steps:
        info = StepInfo(step.node, [], {}, step.leaf)
        plan.append(info)
        if not step.node:
            continue
        info.edges = [(src, step.node) for src in into.get(step.node, [])]
        incoming = step.grad_outputs[0] if step.grad_outputs else None
        info.badges[step.node] = Badge(incoming, "flow")
        if step.leaf:
            info.badges[step.leaf] = Badge(step.leaf_grad, "grad")
        for t in outputs.get(step.node, []):
            node = kinds[t]
            if not node.is_leaf:
                info.badges[t] = Badge(incoming, "grad") if node.retains_grad else Badge(None, "not_kept")
    return plan


def step_view(graph: Graph, trace: BackwardTrace, index: int) -> StepView:
    """The state of the drawing after `index` steps (-1: before the first)."""
    view = StepView()
    plan = step_plan(graph, trace)
    for k, info in enumerate(plan):
        if k > index:
            if info.leaf:
                view.pending_leaves.add(info.leaf)
            continue
        if not info.node:
            continue
        if k == index:
            view.current, view.active_edges = info.node, info.edges
        else:
            view.done_edges.extend(info.edges)
        view.badges.update(info.badges)
    return view
