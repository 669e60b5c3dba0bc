"""Pictures of images that every model family draws: rows of images and image grids.

Each function returns a matplotlib Figure (`save_image_grid` also writes it, atomically).
Imports neither TensorFlow nor a model package, so `rbm_tf` and `autoencoders_tf` share it.
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


def close(figure):
    """Free a figure's memory once it is saved."""
    _pyplot().close(figure)


def save_image_grid(images, path, title=None, num_columns=10):
    """Images [n, 28, 28(, 1)] with values in [0, 1], `num_columns` to a row, into a PNG."""
    from pipelines.runs import save_figure_atomic

    figure = image_grid(images, num_columns=num_columns, title=title)
    try:
        save_figure_atomic(figure, path)
    finally:
        close(figure)
