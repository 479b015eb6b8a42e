"""convforge.viz: plots of training runs and of what a trained CNN looks at.

    viz.plot_history(history, "curves.png")               # loss / accuracy per epoch
    viz.show_filters(model, "filters.png")                # first conv layer's kernels
    viz.show_activations(model, x, "conv2d", "act.png")   # feature maps after a layer
    heat = viz.grad_cam(model, x, "conv2d_1")             # (N, H, W) Grad-CAM maps in [0, 1]
    viz.show_grad_cam(x[0], heat[0], "gradcam.png")       # heatmap over the image

The figures need matplotlib (`pip install matplotlib`, or the `viz` extra); they are drawn on
the Agg canvas directly (no pyplot, no change to the global matplotlib backend) and written
atomically to `path` (each function returns the Path it wrote). grad_cam itself needs only
NumPy. The `convforge viz` command writes these figures for a model trained by `convforge train`.
"""

from ._gradcam import grad_cam, resize_bilinear, show_grad_cam
from ._plots import plot_history, show_activations, show_filters

__all__ = ["grad_cam", "plot_history", "resize_bilinear", "show_activations", "show_filters",
           "show_grad_cam"]
