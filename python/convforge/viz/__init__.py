"""convforge.viz: plots of training runs and of what a trained CNN looks at.

    viz.plot_history(history, "curves.png")               # loss / accuracy per epoch
    viz.show_filters(model, "filters.png")                # first conv layer's kernels
    viz.show_activations(model, x, "conv2d", "act.png")   # feature maps after a layer

The figures need matplotlib (`pip install matplotlib`, or the `viz` extra); they are drawn on
the Agg canvas directly (no pyplot, no change to the global matplotlib backend) and written
atomically to `path` (each function returns the Path it wrote).
"""

from ._plots import plot_history, show_activations, show_filters

__all__ = ["plot_history", "show_activations", "show_filters"]
