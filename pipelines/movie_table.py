"""The recommender's movie table: model index -> (release movie id, title), as movies.tsv.

Kept in a training run and shipped in every recommender export as an asset, so a served model
can be given titles. Plain text, read and written without TensorFlow (the REST client uses it).
"""

import pathlib

from pipelines.errors import RunError

MOVIE_TABLE = "movies.tsv"


def movie_table_text(movie_ids, titles):
    rows = [f"{index}\t{movie_id}\t{title}" for index, (movie_id, title) in
            enumerate(zip(movie_ids, titles))]
    return "index\tmovie_id\ttitle\n" + "\n".join(rows) + "\n"


def write_movie_table(path, movie_ids, titles):
    """Write the table atomically."""
    from pipelines.runs import write_text_atomic
    write_text_atomic(path, movie_table_text(movie_ids, titles))


def read_movie_table(path):
    """(movie ids, titles) in model index order, from a table written by `write_movie_table`."""
    movie_ids, titles = [], []
    try:
        lines = pathlib.Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise RunError(f"cannot read the movie table {path}: {error.strerror}") from None
    for number, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != 3 or not fields[0].isdigit() or int(fields[0]) != len(movie_ids):
            raise RunError(f"{path}:{number}: expected 'index<TAB>movie_id<TAB>title' "
                           f"with index {len(movie_ids)}")
        movie_ids.append(int(fields[1]))
        titles.append(fields[2])
    return movie_ids, titles


def catalogue(num_movies, movie_ids=None, movie_titles=None):
    """A model's (movie_ids, movie_titles): the release's id and title of each movie index,
    by default the indices and "movie <index>"; ValueError unless both have num_movies."""
    if num_movies < 1:
        raise ValueError(f"num_movies must be at least 1, got {num_movies}")
    movie_ids = list(range(num_movies)) if movie_ids is None else [int(m) for m in movie_ids]
    movie_titles = [f"movie {m}" for m in movie_ids] if movie_titles is None else list(movie_titles)
    if not len(movie_ids) == len(movie_titles) == num_movies:
        raise ValueError(f"movie_ids and movie_titles must have num_movies ({num_movies}) "
                         f"entries, got {len(movie_ids)} and {len(movie_titles)}")
    return movie_ids, movie_titles
