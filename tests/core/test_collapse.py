"""core.collapse on hand-made graphs: what folds into which box, edges between boxes,
depth, the readable depth, and which box a hidden node is drawn as."""
from __future__ import annotations

from core.collapse import collapse, collapse_to_depth, drawn_as, readable_depth
from core.layout import adjacency
from core.model.graph import Edge, Graph, OpNode, SavedNode, TensorNode


def leaf(id, name):
    return TensorNode(id, f"t:{name}", name, [2], "float32", "cpu", True, True, None, False)


def net() -> Graph:
    """x -> model.fc1 (Addmm, weight) -> model.act (Relu) -> model.fc2 (Addmm) -> loss."""
    nodes = [leaf("x", "x"), leaf("w1", "model.fc1.weight"), leaf("w2", "model.fc2.weight"),
             OpNode("a1", "ka1", "AccumulateGrad"), OpNode("a2", "ka2", "AccumulateGrad"),
             OpNode("mm1", "k1", "AddmmBackward0", module="model.fc1"),
             SavedNode("s1", "ks1", "mat1", "mm1", [2], "float32"),
             OpNode("relu", "k2", "ReluBackward0", module="model.act"),
             OpNode("mm2", "k3", "AddmmBackward0", module="model.fc2"),
             OpNode("mean", "k4", "MeanBackward0"),
             TensorNode("loss", "t:loss", "loss", [], "float32", "cpu", True, False, "MeanBackward0", False)]
    edges = [Edge("w1", "a1"), Edge("w2", "a2"), Edge("a1", "mm1"), Edge("s1", "mm1"),
             Edge("mm1", "relu"), Edge("relu", "mm2"), Edge("a2", "mm2"), Edge("mm2", "mean"),
             Edge("mean", "loss")]
    return Graph(nodes, edges, {"model": "Sequential", "model.fc1": "Linear", "model.act": "ReLU",
                                "model.fc2": "Linear"})


def ids(graph):
    return [n.id for n in graph.nodes]


def test_everything_open_is_the_graph_itself():
    g = net()
    assert ids(collapse(g, lambda m: True)) == ids(g)


def test_a_closed_module_holds_its_ops_params_accumulates_and_saved():
    g = collapse(net(), lambda m: m != "model.fc1")
    box = next(n for n in g.nodes if n.kind == "module")
    assert (box.name, box.type, box.ops) == ("model.fc1", "Linear", 2)  # Addmm + AccumulateGrad
    assert not {"w1", "a1", "mm1", "s1"} & set(ids(g))
    assert {(e.src, e.dst) for e in g.edges} >= {("m:model.fc1#0", "relu")}
    assert all(e.src != e.dst for e in g.edges)


def test_depth_one_folds_the_whole_model():
    g = collapse_to_depth(net(), 1)
    assert ids(g) == ["x", "m:model#0", "mean", "loss"]
    assert [(e.src, e.dst) for e in g.edges] == [("m:model#0", "mean"), ("mean", "loss")]
    assert g.nodes[1].ops == 5


def test_depth_two_gives_one_box_per_layer():
    g = collapse_to_depth(net(), 2)
    assert {n.name for n in g.nodes if n.kind == "module"} == {"model.fc1", "model.act", "model.fc2"}


def test_a_hidden_node_is_drawn_as_its_box():
    shown = drawn_as(net(), lambda m: m == "model")
    assert shown["mm1"] == "m:model.fc1#0" and shown["relu"] == "m:model.act#0" and shown["mean"] == "mean"


def test_readable_depth_is_the_deepest_that_fits():
    g = net()
    assert readable_depth(g, limit=100) is None
    assert readable_depth(g, limit=7) == 2
    assert readable_depth(g, limit=4) == 1


def test_a_module_called_twice_is_two_boxes_and_folding_makes_no_cycle(runner):
    """torchvision's Bottleneck calls its one ReLU three times: folded, that must be three
    boxes in a chain, not one box with edges in and out of itself (a cycle that broke the
    layered layout into one wide row)."""
    result = runner.run("import torch, torchvision\nmodel = torchvision.models.resnet50(num_classes=10)\n"
                        "loss = model(torch.randn(2, 3, 32, 32)).sum()\n", filename="r.py")
    graph = result.graph.without_saved()
    for depth in (1, 2, 3, 4):
        folded = collapse_to_depth(graph, depth)
        ids = [n.id for n in folded.nodes]
        succ, pred = adjacency(folded)
        indeg = {i: len(pred[i]) for i in ids}
        ready = [i for i in ids if not indeg[i]]
        seen = 0
        while ready:
            n = ready.pop()
            seen += 1
            for s in succ[n]:
                indeg[s] -= 1
                if not indeg[s]:
                    ready.append(s)
        assert seen == len(ids), f"a cycle at depth {depth}"
    relus = [n for n in collapse_to_depth(graph, 4).nodes if n.kind == "module" and n.name == "model.layer1.0.relu"]
    assert sorted(n.call for n in relus) == [0, 1, 2]
