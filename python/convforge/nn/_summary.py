"""Model.summary: the Keras-style table of layers, output shapes and parameter counts."""

from __future__ import annotations

from typing import Any, Callable, Optional


def _shape_str(shape) -> str:
    return str((None,) + tuple(shape))


def summary(self, print_fn: Optional[Callable[[str], Any]] = print) -> str:
    """Prints (with print_fn; None: no printing) and returns a table of `self`'s (a Model's)
    layers, output shapes and parameter counts, with totals and forward FLOPs per sample."""
    from .sequential import Sequential

    self._require_built()
    functional = not isinstance(self, Sequential)
    head = ["Layer (type)", "Output Shape", "Param #"] + (["Connected to"] if functional
                                                           else [])
    rows = []
    if functional:
        rows.append([f"{self.input.name} (InputLayer)", _shape_str(self.input.shape), "0",
                     ""])
    for n in self._nodes:
        la = n.layer
        row = [f"{la.name} ({type(la).__name__})", _shape_str(n.output.shape),
               f"{la.count_params():,}"]
        if functional:
            row.append(", ".join(t.node.layer.name if t.node else t.name for t in n.inputs))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows + [head]) + 3 for i in range(len(head))]
    total = sum(widths)

    def line(cells):
        return "".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    trainable = sum(p.size for p in self.trainable_params)
    count = self.count_params()
    out = [f'Model: "{self.name}"', "_" * total, line(head), "=" * total]
    for i, r in enumerate(rows):
        out.append(line(r))
        out.append("_" * total if i < len(rows) - 1 else "=" * total)
    out += [f"Total params: {count:,}", f"Trainable params: {trainable:,}",
            f"Non-trainable params: {count - trainable:,}",
            f"Forward FLOPs per sample: {self.count_flops():,}", "_" * total]
    text = "\n".join(out)
    if print_fn is not None:
        print_fn(text)
    return text
