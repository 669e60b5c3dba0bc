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
