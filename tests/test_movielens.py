"""MovieLens readers, splits and the unpack-and-verify path, on fixtures written in each format."""

import hashlib
import zipfile

import numpy as np
import pandas as pd
import pytest

from pipelines import movielens

ML100K = movielens.get_release("ml-100k")
ML1M = movielens.get_release("ml-1m")
ML10M = movielens.get_release("ml-10m")
ML25M = movielens.get_release("ml-25m")

U_DATA = "1\t10\t5\t881250949\n1\t20\t2\t881250950\n2\t10\t3\t891717742\n3\t30\t1\t878887116\n"


def write(path, text, encoding="utf-8"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def test_reads_ml100k_u_data_into_the_ratings_table(tmp_path):
    write(tmp_path / "ml-100k" / "u.data", U_DATA)
    # the parent of the release directory works as well as the directory itself
    for raw_dir in (tmp_path, tmp_path / "ml-100k"):
        table = movielens.load_ratings(raw_dir, ML100K)
        assert list(table.columns) == ["user", "movie", "rating", "timestamp"]
        assert table["user"].tolist() == [1, 1, 2, 3]
        assert table["movie"].tolist() == [10, 20, 10, 30]
        assert table["rating"].tolist() == [5.0, 2.0, 3.0, 1.0]
        assert table["timestamp"].tolist()[0] == 881250949


def test_reads_double_colon_ratings_dat(tmp_path):
    write(tmp_path / "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n")
    table = movielens.load_ratings(tmp_path, ML1M)
    assert table["movie"].tolist() == [1193, 661, 1193]
    assert table["rating"].tolist() == [5.0, 3.0, 4.0]


def test_reads_ml10m_half_stars_from_its_own_directory_name(tmp_path):
    write(tmp_path / "ml-10M100K" / "ratings.dat", "1::122::5::838985046\n1::185::4.5::838983525\n")
    table = movielens.load_ratings(tmp_path, ML10M)
    assert table["rating"].tolist() == [5.0, 4.5]


def test_reads_ratings_csv_with_header_and_half_stars(tmp_path):
    write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n1,296,5.0,1147880044\n"
                                    "1,306,3.5,1147868817\n2,307,0.5,1147868828\n")
    table = movielens.load_ratings(tmp_path, ML25M)
    assert table["user"].tolist() == [1, 1, 2]
    assert table["rating"].tolist() == [5.0, 3.5, 0.5]


@pytest.mark.parametrize("release, name, text, line", [
    (ML100K, "u.data", "1\t10\t5\t881250949\n1\tx\t2\t881250950\n", 2),
    (ML100K, "u.data", "1\t10\t5\t881250949\n\n2\t10\t3\t891717742\n2\t11\n", 4),
    (ML1M, "ratings.dat", "1::1193::5::978300760\n1::661::3\n", 2),
    (ML25M, "ratings.csv", "userId,movieId,rating,timestamp\n1,296,5.0,1147880044\n1,,3.5,1147868817\n", 3),
])
def test_a_malformed_line_is_reported_with_its_file_and_line_number(tmp_path, release, name, text, line):
    write(tmp_path / name, text)
    with pytest.raises(movielens.MovieLensError, match=rf"{name}:{line}: malformed line"):
        movielens.load_ratings(tmp_path, release)


def test_a_line_with_too_many_fields_is_a_readable_error(tmp_path):
    write(tmp_path / "u.data", "1\t10\t5\t881250949\n1\t20\t2\t881250950\t7\t8\n")
    with pytest.raises(movielens.MovieLensError, match=r"u.data:2: malformed line"):
        movielens.load_ratings(tmp_path, ML100K)


@pytest.mark.parametrize("release, name, text, rating", [
    (ML100K, "u.data", "1\t10\t5\t881250949\n1\t20\t6\t881250950\n", "6"),
    (ML100K, "u.data", "1\t10\t4.5\t881250949\n", "4.5"),
    (ML25M, "ratings.csv", "userId,movieId,rating,timestamp\n1,296,0.0,1147880044\n", "0"),
])
def test_a_rating_outside_the_release_scale_is_an_error(tmp_path, release, name, text, rating):
    write(tmp_path / name, text)
    with pytest.raises(movielens.MovieLensError, match=rf"rating {rating} is outside"):
        movielens.load_ratings(tmp_path, release)


@pytest.mark.parametrize("release, name, text, line", [
    (ML100K, "u.data", "1\t10\t5\t881250949\n1\t20\t2\t881250950\n1\t30\t6\t881250951\n"
                       "2\t10\t3\t891717742\n", 3),
    # a blank line is still a line of the file
    (ML100K, "u.data", "1\t10\t5\t881250949\n\n1\t30\t6\t881250951\n", 3),
    (ML1M, "ratings.dat", "1::1193::5::978300760\n1::661::6::978302109\n", 2),
    # the header is line 1, so the second data row is line 3
    (ML25M, "ratings.csv", "userId,movieId,rating,timestamp\n1,296,5.0,1147880044\n"
                           "1,306,6.0,1147868817\n2,307,0.5,1147868828\n", 3),
], ids=["u_data", "u_data_blank_line", "ratings_dat", "ratings_csv_header"])
def test_a_rating_outside_the_scale_names_the_file_and_its_exact_line(tmp_path, release, name, text, line):
    path = write(tmp_path / name, text)
    with pytest.raises(movielens.MovieLensError) as error:
        movielens.load_ratings(tmp_path, release)
    assert str(error.value).startswith(f"{path}:{line}: rating 6 is outside"), str(error.value)


FORMAT_FIXTURES = {
    # release, file name, header, separator; the rows have half stars only where the release does
    "u_data": (ML100K, "u.data", "", "\t"),
    "ratings_dat": (ML1M, "ratings.dat", "", "::"),
    "ratings_dat_half_stars": (ML10M, "ratings.dat", "", "::"),
    "ratings_csv": (ML25M, "ratings.csv", "userId,movieId,rating,timestamp\n", ","),
}


def fixture_text(release, header, separator, num_rows=40, seed=0):
    rng = np.random.default_rng(seed)
    stars = release.allowed_ratings
    lines = [separator.join([str(rng.integers(1, 9)), str(rng.integers(1, 3000)),
                             f"{rng.choice(stars):g}" if rng.random() < 0.5 else f"{rng.choice(stars):.1f}",
                             str(rng.integers(8 * 10**8, 16 * 10**8))])
             for _ in range(num_rows)]
    # a blank line and a Windows line end are part of real files' variety
    lines[7] += "\r"
    lines.insert(12, "")
    return header + "\n".join(lines) + "\n"


@pytest.mark.parametrize("fixture", FORMAT_FIXTURES)
def test_the_fast_reader_reads_a_clean_file_as_the_line_checking_reader_does(tmp_path, fixture, monkeypatch):
    release, name, header, separator = FORMAT_FIXTURES[fixture]
    path = write(tmp_path / name, fixture_text(release, header, separator))
    checked = movielens._checked_table(path, release)
    assert len(checked) == 40
    # a clean file never needs the slow reader
    monkeypatch.setattr(movielens, "_checked_table", lambda *args: pytest.fail("fell back"))
    table = movielens.read_ratings_file(path, release)
    pd.testing.assert_frame_equal(table, checked)
    assert table.dtypes.tolist() == [np.int32, np.int32, np.float32, np.int64]


@pytest.mark.parametrize("fixture", FORMAT_FIXTURES)
@pytest.mark.parametrize("bad, message", [
    ("{user}{sep}x{sep}{rating}{sep}1", "malformed line"),
    ("{user}{sep}7{sep}{rating}", "malformed line"),
    ("{user}{sep}7{sep}{rating}{sep}1{sep}9", "malformed line"),
    ("{user}{sep}7{sep}nan{sep}1", "malformed line"),
    ("{user}{sep}7{sep}9{sep}1", "rating 9 is outside"),
    ("{user}{sep}7{sep}4.25{sep}1", "rating 4.25 is outside"),
    ("9999999999{sep}7{sep}{rating}{sep}1", "user id 9999999999 is beyond"),
])
def test_the_first_bad_line_deep_in_a_file_is_named_by_its_line(tmp_path, fixture, bad, message, monkeypatch):
    # small chunks, so that the bad line lies in a later chunk of the line-checking reader
    monkeypatch.setattr(movielens, "CHECK_CHUNK_ROWS", 4)
    release, name, header, separator = FORMAT_FIXTURES[fixture]
    lines = fixture_text(release, header, separator).splitlines()
    bad_line = 23 + bool(header)
    lines[bad_line - 1] = bad.format(sep=separator, user=3, rating="3")
    # a second bad line after it must not be the one reported
    lines[bad_line + 5] = bad.format(sep=separator, user=3, rating="3")
    path = write(tmp_path / name, "\n".join(lines) + "\n")
    with pytest.raises(movielens.MovieLensError) as error:
        movielens.read_ratings_file(path, release)
    assert str(error.value).startswith(f"{path}:{bad_line}: "), str(error.value)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_colon_inside_a_double_colon_ratings_dat_is_a_malformed_line(tmp_path):
    write(tmp_path / "ratings.dat", "1::1193::5::978300760\n1:::661::3::978302109\n")
    with pytest.raises(movielens.MovieLensError, match=r"ratings.dat:2: malformed line"):
        movielens.load_ratings(tmp_path, ML1M)


def test_an_empty_ratings_file_holds_no_ratings(tmp_path):
    write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n")
    with pytest.raises(movielens.MovieLensError, match="holds no ratings"):
        movielens.load_ratings(tmp_path, ML25M)


def test_missing_empty_and_wrong_directories_are_readable_errors(tmp_path):
    with pytest.raises(movielens.MovieLensError, match="is not a directory"):
        movielens.load_ratings(tmp_path / "nowhere", ML100K)
    with pytest.raises(movielens.MovieLensError, match="is empty"):
        movielens.load_ratings(tmp_path, ML100K)
    write(tmp_path / "ratings.dat", "1::1::5::1\n")
    with pytest.raises(movielens.MovieLensError, match="no u.data in"):
        movielens.load_ratings(tmp_path, ML100K)


def test_unknown_release_lists_the_known_ones():
    with pytest.raises(movielens.MovieLensError, match="ml-100k, ml-1m"):
        movielens.get_release("ml-5k")


def test_titles_from_latin1_u_item_movies_dat_and_quoted_movies_csv(tmp_path):
    write(tmp_path / "a" / "u.data", U_DATA)
    write(tmp_path / "a" / "u.item", "1|Toy Story (1995)|01-Jan-1995||http://x|0|0\n"
                                     "2|Misérables, Les (1995)|01-Jan-1995||http://x|0|0\n", "latin-1")
    assert movielens.load_titles(tmp_path / "a", ML100K) == {1: "Toy Story (1995)", 2: "Misérables, Les (1995)"}
    write(tmp_path / "b" / "ratings.dat", "1::1::5::1\n")
    write(tmp_path / "b" / "movies.dat", "1::Toy Story (1995)::Animation\n2::Café au lait (1993)::Comedy\n", "latin-1")
    assert movielens.load_titles(tmp_path / "b", ML1M)[2] == "Café au lait (1993)"
    write(tmp_path / "c" / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,5.0,1\n")
    write(tmp_path / "c" / "movies.csv", 'movieId,title,genres\n1,"American President, The (1995)",Comedy\n')
    assert movielens.load_titles(tmp_path / "c", ML25M) == {1: "American President, The (1995)"}


def test_canonical_split_reads_base_and_test_files(tmp_path):
    write(tmp_path / "u.data", U_DATA)
    write(tmp_path / "u1.base", "1\t10\t5\t881250949\n2\t10\t3\t891717742\n")
    write(tmp_path / "u1.test", "1\t20\t2\t881250950\n")
    train, test = movielens.canonical_split(tmp_path, ML100K, "u1")
    assert len(train) == 2 and test["movie"].tolist() == [20]
    with pytest.raises(movielens.MovieLensError, match="u2.base does not exist"):
        movielens.canonical_split(tmp_path, ML100K, "u2")


def random_ratings(num_users=30, num_movies=50, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(1, num_users + 1):
        count = rng.integers(5, 40)
        for movie in rng.choice(num_movies, count, replace=False):
            rows.append((user, movie + 1, float(rng.integers(1, 6)), int(rng.integers(1e8, 2e8))))
    return pd.DataFrame(rows, columns=list(movielens.RATING_COLUMNS))


@pytest.mark.parametrize("order", ["random", "time"])
def test_holdout_split_invariants(order):
    ratings = random_ratings()
    train, test = movielens.holdout_split(ratings, 5, order=order, seed=3)
    pairs = lambda table: set(zip(table["user"], table["movie"]))  # noqa: E731
    assert not pairs(train) & pairs(test)
    assert pairs(train) | pairs(test) == pairs(ratings)
    counts = ratings.groupby("user").size()
    test_counts = test.groupby("user").size()
    assert set(test_counts.index) == set(counts[counts > 10].index)
    assert (test_counts == 5).all()


def test_holdout_split_is_seeded():
    ratings = random_ratings()
    first = movielens.holdout_split(ratings, 5, seed=1)[1]
    again = movielens.holdout_split(ratings, 5, seed=1)[1]
    other = movielens.holdout_split(ratings, 5, seed=2)[1]
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(other)


def test_holdout_split_holds_out_the_same_pairs_for_one_seed_and_other_pairs_for_another():
    ratings = random_ratings()

    def held_out(seed):
        test = movielens.holdout_split(ratings, 5, seed=seed)[1]
        return set(zip(test["user"], test["movie"]))

    first, again, other = held_out(1), held_out(1), held_out(2)
    assert first == again
    assert len(first) == len(other) and first != other


@pytest.mark.parametrize("order", ["random", "time"])
def test_only_users_with_more_than_twice_the_holdout_count_get_test_ratings(order):
    test_per_user = 2
    rows = [(user, movie, 4.0, 100 + movie)
            for user, count in ((1, 2 * test_per_user), (2, 2 * test_per_user + 1), (3, 1))
            for movie in range(1, count + 1)]
    ratings = pd.DataFrame(rows, columns=list(movielens.RATING_COLUMNS))
    train, test = movielens.holdout_split(ratings, test_per_user, order=order, seed=0)
    assert test["user"].tolist() == [2, 2]
    assert train.groupby("user").size().to_dict() == {1: 4, 2: 3, 3: 1}


def reference_holdout(ratings, test_per_user, key):
    """The holdout by hand: per user, the rows with the smallest keys if the user has enough."""
    in_test = np.zeros(len(ratings), bool)
    for user in np.unique(ratings["user"]):
        rows = np.flatnonzero(ratings["user"].to_numpy() == user)
        if len(rows) > 2 * test_per_user:
            in_test[rows[np.argsort(key[rows], kind="stable")[:test_per_user]]] = True
    return ratings[~in_test].reset_index(drop=True), ratings[in_test].reset_index(drop=True)


@pytest.mark.parametrize("test_per_user", [1, 3, 5])
def test_holdout_split_equals_a_per_user_reference(test_per_user):
    ratings = random_ratings(num_users=25, seed=4).sample(frac=1.0, random_state=1).reset_index(drop=True)
    key = np.random.default_rng(7).random(len(ratings))
    want = reference_holdout(ratings, test_per_user, key)
    for got, expected in zip(movielens.holdout_split(ratings, test_per_user, seed=7), want):
        pd.testing.assert_frame_equal(got, expected)
    # time order: latest first, ties broken by the larger movie id
    ratings["timestamp"] = ratings["timestamp"] % 7
    latest = np.lexsort((-ratings["movie"].to_numpy(), -ratings["timestamp"].to_numpy()))
    time_key = np.argsort(latest)
    want = reference_holdout(ratings, test_per_user, time_key)
    for got, expected in zip(movielens.holdout_split(ratings, test_per_user, order="time"), want):
        pd.testing.assert_frame_equal(got, expected)


def test_the_packed_sorts_order_rows_as_a_stable_argsort():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 50, 10_000)  # many ties, kept in row order
    np.testing.assert_array_equal(movielens._stable_order(values), np.argsort(values, kind="stable"))
    # values too wide to share 63 bits with the row numbers take the plain argsort
    wide = rng.integers(0, 2**62, 1000) | (1 << 62)
    np.testing.assert_array_equal(movielens._stable_order(wide), np.argsort(wide, kind="stable"))
    # among 2**20 draws the leading bits are 43: draws a few ulps apart share them and equal
    # draws tie, in either row order
    draws = rng.random(2**20)
    near = 0.5 + np.arange(6) * 2.0**-53
    draws[[5, 900, 77_000, 300_000, 1_000_000, 12]] = near[::-1]
    draws[[40, 41, 500_000]] = 0.25
    order = movielens._order_of_draws(draws)
    np.testing.assert_array_equal(order, np.argsort(draws, kind="stable"))


def test_time_order_holds_out_each_users_latest_ratings():
    ratings = random_ratings()
    train, test = movielens.holdout_split(ratings, 5, order="time")
    for user, held_out in test.groupby("user"):
        kept = train[train["user"] == user]
        assert held_out["timestamp"].min() >= kept["timestamp"].max()


def test_like_labels_threshold():
    np.testing.assert_array_equal(movielens.like_labels([1, 2.5, 3, 4.5, 5]), [0, 0, 1, 1, 1])
    np.testing.assert_array_equal(movielens.like_labels([3, 4], threshold=4), [0, 1])


def make_release_zip(path, directory="ml-100k", members=None):
    members = members or {f"{directory}/u.data": U_DATA, f"{directory}/u.item": "10|Ten (1990)\n"}
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return path


def test_unpack_verifies_the_checksum_and_unpacks_the_release(tmp_path):
    zip_path = make_release_zip(tmp_path / "ml-100k.zip")
    sha256 = hashlib.sha256(zip_path.read_bytes()).hexdigest()
    md5 = hashlib.md5(zip_path.read_bytes()).hexdigest()
    target = movielens.unpack_release(zip_path, tmp_path / "raw", ML100K, sha256=sha256, md5=md5)
    assert target == tmp_path / "raw" / "ml-100k"
    assert len(movielens.load_ratings(tmp_path / "raw", ML100K)) == 4
    # nothing else is left beside the release
    assert [p.name for p in (tmp_path / "raw").iterdir()] == ["ml-100k"]


def test_unpack_refuses_a_damaged_download_and_leaves_nothing(tmp_path):
    zip_path = make_release_zip(tmp_path / "ml-100k.zip")
    with pytest.raises(movielens.MovieLensError, match="does not match the published sha256"):
        movielens.unpack_release(zip_path, tmp_path / "raw", ML100K, sha256="0" * 64)
    with pytest.raises(movielens.MovieLensError, match="does not match the published md5"):
        movielens.unpack_release(zip_path, tmp_path / "raw", ML100K, md5="0" * 32)
    assert not (tmp_path / "raw" / "ml-100k").exists()


def test_unpack_refuses_a_zip_without_the_ratings_or_with_unsafe_paths(tmp_path):
    wrong = make_release_zip(tmp_path / "a.zip", members={"ml-100k/README": "x"})
    with pytest.raises(movielens.MovieLensError, match="has no ml-100k/u.data"):
        movielens.unpack_release(wrong, tmp_path / "raw", ML100K)
    unsafe = make_release_zip(tmp_path / "b.zip", members={"../evil": "x", "ml-100k/u.data": U_DATA})
    with pytest.raises(movielens.MovieLensError, match="unsafe member path"):
        movielens.unpack_release(unsafe, tmp_path / "raw", ML100K)
    assert not (tmp_path / "evil").exists()
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(movielens.MovieLensError, match="is not a zip file"):
        movielens.unpack_release(tmp_path / "junk.zip", tmp_path / "raw", ML100K)
    assert not (tmp_path / "raw" / "ml-100k").exists()


def test_every_release_has_an_official_url():
    for name, release in movielens.RELEASES.items():
        assert release.url == f"https://files.grouplens.org/datasets/movielens/{name}.zip"


def test_download_fetches_the_published_md5_and_unpacks(tmp_path, monkeypatch):
    # a release without a fixed checksum is checked against the .md5 published beside its zip
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    members = {"ml-latest/ratings.csv": "userId,movieId,rating,timestamp\n1,2,4.5,1\n"}
    zip_path = make_release_zip(mirror / "ml-latest.zip", members=members)
    md5 = hashlib.md5(zip_path.read_bytes()).hexdigest()
    (mirror / "ml-latest.zip.md5").write_text(f"MD5 (ml-latest.zip) = {md5}\n")
    monkeypatch.setattr(movielens, "DOWNLOAD_ROOT", mirror.as_uri() + "/")
    release = movielens.get_release("ml-latest")
    target = movielens.download_release(release, tmp_path / "raw")
    assert movielens.load_ratings(target, release)["rating"].tolist() == [4.5]
    assert [p.name for p in (tmp_path / "raw").iterdir()] == ["ml-latest"]

    (mirror / "ml-latest.zip.md5").write_text("0" * 32 + "  ml-latest.zip\n")
    with pytest.raises(movielens.MovieLensError, match="does not match the published md5"):
        movielens.download_release(release, tmp_path / "again")
    with pytest.raises(movielens.MovieLensError, match="could not download"):
        movielens.download_release(movielens.get_release("ml-32m"), tmp_path / "missing")
    assert not any((tmp_path / "again").iterdir())
