"""Running a Model's graph: the forward and backward walks over its nodes (in topological
order), the layer pairs that run as one pass (fusions), and the naming of its layers."""

from __future__ import annotations

from typing import Any, Optional

from .base import _snake, _unique_name
from .layers import Activation, BatchNormalization, Conv2D, MaxPooling2D


def collect_nodes(inp, outs) -> list:
    """The nodes from Input tensor `inp` to the tensors `outs`, each after its inputs'. Refuses
    outputs that depend on another Input and layers called more than once (shared layers)."""
    nodes, leaves, seen = [], [], set()

    def visit(t) -> None:
        if id(t) in seen:
            return
        seen.add(id(t))
        if t.node is None:
            leaves.append(t)
            return
        for parent in t.node.inputs:
            visit(parent)
        nodes.append(t.node)

    for t in outs:
        visit(t)
    if any(leaf is not inp for leaf in leaves):
        raise ValueError("the outputs depend on an Input that is not the model's input")
    layers = [n.layer for n in nodes]
    if len({id(la) for la in layers}) != len(layers):
        dup = next(la for la in layers if sum(m is la for m in layers) > 1)
        raise ValueError(f"layer {dup.label} is called more than once in this model; "
                         "shared layers are not supported")
    return nodes


def name_layers(layers) -> None:
    """Unnamed layers get snake_case class names, numbered within the model."""
    used: set = set()
    for la in layers:
        if la.name is not None:
            if la.name in used:
                raise ValueError(f"two layers in one model are named {la.name!r}")
            used.add(la.name)
    for la in layers:
        if la.name is None:
            la.name = _unique_name(_snake(la.default_name()), used)
            used.add(la.name)


def find_fusions(nodes, outs) -> dict:
    """{id(BatchNormalization node): the ReLU node that takes its output}, where that ReLU is
    the output's only consumer and the output is not a model output: the pair then runs as one
    pass (BatchNormalization.forward(relu=True)) and the ReLU node is skipped, forward and
    backward. Decided per model: a layer shared by two models fuses only where it can."""
    consumers: dict[int, list] = {}
    for node in nodes:
        for t in node.inputs:
            consumers.setdefault(id(t), []).append(node)
    out_ids = {id(t) for t in outs}
    fused = {}
    for node in nodes:
        users = consumers.get(id(node.output), [])
        if (isinstance(node.layer, BatchNormalization) and len(users) == 1
                and isinstance(users[0].layer, Activation)
                and users[0].layer.activation == "relu" and id(node.output) not in out_ids):
            fused[id(node)] = users[0]
    return fused


def find_pool_relu(nodes, outs) -> dict:
    """{id(MaxPooling2D node): the node whose ReLU made its input} where the input is the
    output of a ReLU (a Conv2D with activation="relu", or a ReLU / Activation("relu") layer,
    fused into a BatchNormalization or not), the pool is its only consumer and it is not a
    model output. In backward the pool then does the ReLU's backward too (its gradient passes
    only where the pooled maximum is > 0: F.max_pool2d_backward(relu_y=)), on the pooled
    side, a quarter of the size, and the ReLU's own backward is skipped."""
    consumers: dict[int, int] = {}
    for node in nodes:
        for t in node.inputs:
            consumers[id(t)] = consumers.get(id(t), 0) + 1
    relu_made = {id(n.output): n for n in nodes
                 if isinstance(n.layer, (Conv2D, Activation)) and n.layer.activation == "relu"}
    out_ids = {id(t) for t in outs}
    return {id(n): relu_made[id(n.inputs[0])] for n in nodes
            if isinstance(n.layer, MaxPooling2D) and id(n.inputs[0]) in relu_made
            and consumers[id(n.inputs[0])] == 1 and id(n.inputs[0]) not in out_ids}


def run_forward(nodes, fused: dict, values: dict, training: bool) -> dict:
    """Runs every node on `values` ({id(tensor): array}, holding the input) and returns it with
    every node's output added."""
    skip = {id(relu) for relu in fused.values()}
    for node in nodes:
        if id(node) in skip:   # a ReLU run by the BatchNormalization before it
            continue
        args = [values[id(t)] for t in node.inputs]
        relu = fused.get(id(node))
        y = node.layer.forward(args if node.layer.multi_input else args[0], training,
                               **({"relu": True} if relu else {}))
        values[id(node.output)] = y
        if relu:
            values[id(relu.output)] = y
    return values


def add_grad(grads: dict, t, g) -> None:
    """Adds g to the gradient of tensor t."""
    grads[id(t)] = g if id(t) not in grads else grads[id(t)] + g


def wanted_grads(nodes, keep: set, trainable: Optional[dict] = None) -> set:
    """Ids of the tensors whose gradient someone uses: those in `keep`, and every output of a
    node with trainable parameters or with such a tensor upstream. Below the lowest trainable
    layer (a first layer's input, a frozen base) backward has nothing to do. trainable:
    {id(node): whether its layer has trainable parameters}, when the caller has it."""
    trainable = trainable or _trainable(nodes)
    wanted = set(keep)
    for node in nodes:
        if trainable[id(node)] or any(id(t) in wanted for t in node.inputs):
            wanted.add(id(node.output))
    return wanted


def _trainable(nodes) -> dict:
    return {id(node): bool(node.layer.trainable_params) for node in nodes}


def run_backward(nodes, fused: dict, grads: dict, keep: set,
                 pool_relu: Optional[dict] = None, layer_done=None) -> None:
    """Back-propagates `grads` ({id(tensor): gradient}, holding the outputs') through the nodes
    in reverse; the gradients of tensors in `keep` stay in grads, the others are dropped once
    used. A node whose inputs' gradients nobody uses (wanted_grads) is asked not to compute
    them, and a node without trainable parameters below that point is not run at all.
    pool_relu (find_pool_relu): max pools that do the backward of the ReLU before them.
    layer_done(layer): called after each layer with trainable parameters has run its backward
    (their gradients are then complete: data-parallel training starts sending them)."""
    skip = {id(relu): bn for bn in nodes for relu in [fused.get(id(bn))] if relu}
    trainable = _trainable(nodes)
    wanted = wanted_grads(nodes, keep, trainable)
    pool_relu = pool_relu or {}
    done = set()   # ids of ReLU outputs whose gradient a fused max pool already masked
    for node in reversed(nodes):
        key = id(node.output)
        g: Any = grads.get(key) if key in keep else grads.pop(key, None)
        if g is None or key not in wanted:
            continue
        if id(node) in skip:
            # A fused ReLU: its BatchNormalization masks g itself (or a max pool did). Where
            # the normalised values before the ReLU are asked for (keep), their gradient is the
            # masked g (masking it again in the BatchNormalization changes nothing).
            bn = skip[id(node)]
            if key in done:
                done.add(id(bn.output))
            add_grad(grads, bn.output,
                     bn.layer.relu_input_grad(g) if id(bn.output) in keep else g)
            continue
        need_dx = any(id(t) in wanted for t in node.inputs)
        if not need_dx and not trainable[id(node)]:
            continue
        opts = {}
        if key in done:          # g is already through this node's ReLU
            if isinstance(node.layer, Activation):
                add_grad(grads, node.inputs[0], g)
                continue
            opts["relu_done"] = True
        if id(node) in pool_relu and id(node.inputs[0]) not in keep:
            opts["relu"] = True
            done.add(id(node.inputs[0]))
        dx = node.layer.backward(g, need_dx, **opts)
        if layer_done is not None and trainable[id(node)]:
            layer_done(node.layer)
        if not need_dx:
            continue
        for t, d in zip(node.inputs, dx if node.layer.multi_input else [dx]):
            add_grad(grads, t, d)
