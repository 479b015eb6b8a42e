"""Running a Model's graph: the forward and backward walks over its nodes (in topological
order), and the layer pairs that run as one pass (fusions)."""

from __future__ import annotations

from typing import Any

from .layers import Activation, BatchNormalization


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


def run_backward(nodes, fused: dict, grads: dict, keep: set) -> None:
    """Back-propagates `grads` ({id(tensor): gradient}, holding the outputs') through the nodes
    in reverse; the gradients of tensors in `keep` stay in grads, the others are dropped once
    used."""
    skip = {id(relu): bn for bn in nodes for relu in [fused.get(id(bn))] if relu}
    for node in reversed(nodes):
        key = id(node.output)
        g: Any = grads.get(key) if key in keep else grads.pop(key, None)
        if g is None:
            continue
        if id(node) in skip:
            # A fused ReLU: its BatchNormalization masks g itself. Where the normalised values
            # before the ReLU are asked for (keep), their gradient is the masked g (masking it
            # again in the BatchNormalization changes nothing).
            bn = skip[id(node)]
            add_grad(grads, bn.output,
                     bn.layer.relu_input_grad(g) if id(bn.output) in keep else g)
            continue
        dx = node.layer.backward(g)
        for t, d in zip(node.inputs, dx if node.layer.multi_input else [dx]):
            add_grad(grads, t, d)
