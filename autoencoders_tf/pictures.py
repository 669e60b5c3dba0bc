"""Figures of what an autoencoder does: its codes as a scatter, coloured by class.

Rows of images and sample grids are `pipelines.figures`', shared with the DBN. Each function
returns a matplotlib Figure; saving it is the caller's business.
"""

import numpy as np


def latent_scatter(codes, labels, class_names=None, title=None):
    """Codes [n, 2] or [n, 3] as points coloured by label (a 3-D scatter for 3-D codes)."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot

    codes = np.asarray(codes)
    if codes.shape[1] not in (2, 3):
        raise ValueError(f"a latent scatter needs 2-D or 3-D codes, got {codes.shape[1]}-D")
    figure = pyplot.figure(figsize=(7, 6))
    axes = figure.add_subplot(projection="3d" if codes.shape[1] == 3 else None)
    points = axes.scatter(*codes.T, c=labels, cmap="tab10", s=4, vmin=-0.5, vmax=9.5)
    colorbar = figure.colorbar(points, ax=axes, ticks=range(10), shrink=0.8)
    if class_names:
        colorbar.ax.set_yticklabels(class_names)
    if title:
        axes.set_title(title)
    return figure
