"""Shared test helpers: small ML-100K and IDX directories written in the test, running a script's main."""

import numpy as np
import pytest

from pipelines.images import write_idx


def planted_ml100k_ratings(num_users=80, num_movies=30, seed=0):
    """(user, movie, rating, timestamp) rows with two taste groups of opposite likes.

    Movies 1-5 are liked by everyone, so "always like" is a real baseline; each user rates
    about 60% of the movies.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(1, num_users + 1):
        likes_first_half = user % 2 == 0
        for movie in range(1, num_movies + 1):
            if rng.random() > 0.6:
                continue
            liked = movie <= 5 or ((movie <= num_movies // 2) == likes_first_half)
            rating = int(rng.integers(4, 6)) if liked else int(rng.integers(1, 3))
            rows.append((user, movie, rating, 880000000 + int(rng.integers(0, 10**6))))
    return rows


def write_ml100k(directory, rows, test_fraction=0.2, seed=0):
    """u.data, u.item and u1.base/u1.test in ML-100K's own formats."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = [f"{u}\t{m}\t{r}\t{t}\n" for u, m, r, t in rows]
    (directory / "u.data").write_text("".join(lines))
    in_test = np.random.default_rng(seed).random(len(lines)) < test_fraction
    (directory / "u1.base").write_text("".join(l for l, t in zip(lines, in_test) if not t))
    (directory / "u1.test").write_text("".join(l for l, t in zip(lines, in_test) if t))
    movies = sorted({m for _, m, _, _ in rows})
    (directory / "u.item").write_bytes("".join(
        f"{m}|Movie {m} (199{m % 10})|01-Jan-1995||http://example.invalid|0\n" for m in movies
    ).encode("latin-1"))
    return directory


def write_stripe_digits(directory, num_train=120, num_test=40, seed=0):
    """The four IDX files of a 4-class 'MNIST': 28x28 images with one bright band per class."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, count in (("train", num_train), ("t10k", num_test)):
        labels = rng.integers(0, 4, count).astype(np.uint8)
        images = (rng.random([count, 28, 28]) * 60).astype(np.uint8)
        for index, label in enumerate(labels):
            images[index, 7 * label:7 * label + 7] = 200 + rng.integers(0, 55, [7, 28])
        write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return directory


def run_script(main, argv, capsys):
    """(exit code, stdout, stderr) of a script's `main(argv)`, whether it returns or exits."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def fails_with(capsys, main, argv, message):
    """`main(argv)` exits with code 2 and one error line on stderr that contains `message`."""
    code, _, err = run_script(main, argv, capsys)
    assert code == 2
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and message in lines[0], lines


@pytest.fixture
def ml100k_dir(tmp_path):
    """A planted-taste ML-100K directory under tmp_path/raw/ml-100k."""
    return write_ml100k(tmp_path / "raw" / "ml-100k", planted_ml100k_ratings())


def randomised(rbm, seed, weight_stddev=0.8):
    """`rbm` (binary or rating) with weights N(0, weight_stddev^2) and biases N(0, 0.25) drawn
    from numpy with `seed`: large enough that a hand computation tells units apart."""
    rng = np.random.default_rng(seed)
    rbm.weights.assign(rng.normal(0, weight_stddev, rbm.weights.shape).astype(np.float32))
    rbm.visible_bias.assign(rng.normal(0, 0.5, rbm.visible_bias.shape).astype(np.float32))
    rbm.hidden_bias.assign(rng.normal(0, 0.5, rbm.hidden_bias.shape).astype(np.float32))
    return rbm
