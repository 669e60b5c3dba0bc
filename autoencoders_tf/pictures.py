"""Figures of what an autoencoder does: image rows, sample grids, latent scatters.

Each function returns a matplotlib Figure; saving it is the caller's business.
"""

import numpy as np


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot
    return pyplot


def image_rows(rows, title=None):
    """One row of images per (label, images [n, 28, 28(, 1)]) pair, labelled on the left."""
    pyplot = _pyplot()
    num_columns = max(len(images) for _, images in rows)
    figure, axes = pyplot.subplots(len(rows), num_columns, squeeze=False,
                                   figsize=(num_columns * 0.9, len(rows) * 1.0))
    for row, (label, images) in enumerate(rows):
        for column in range(num_columns):
            axis = axes[row, column]
            axis.set_xticks([])
            axis.set_yticks([])
            if column < len(images):
                axis.imshow(np.squeeze(np.asarray(images[column])), cmap="gray", vmin=0.0, vmax=1.0)
            else:
                axis.axis("off")
        axes[row, 0].set_ylabel(label, rotation=0, ha="right", va="center")
    if title:
        figure.suptitle(title)
    return figure


def image_grid(images, num_columns=8, title=None):
    """Images [n, 28, 28(, 1)] in a grid of `num_columns` columns."""
    images = np.asarray(images)
    rows = [("", images[start:start + num_columns]) for start in range(0, len(images), num_columns)]
    return image_rows(rows, title=title)


def latent_scatter(codes, labels, class_names=None, title=None):
    """Codes [n, 2] or [n, 3] as points coloured by label (a 3-D scatter for 3-D codes)."""
    pyplot = _pyplot()
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


def close(figure):
    """Free a figure's memory once it is saved."""
    _pyplot().close(figure)
