"""rec-train: a short run of every model on a tiny planted-taste split, the re-export, and
the one-line errors."""

import json

import pytest

from scripts import export
from scripts import rbm_prepare
from scripts import rec_train
from tests.conftest import fails_with
from tests.conftest import planted_ml100k_ratings
from tests.conftest import write_ml100k

SMALL = {
    "autorec": ["--hidden", "8", "--batch-size", "10", "--epochs", "8", "--learning-rate", "0.05"],
    "mult-vae": ["--hidden", "16", "--latent-dim", "4", "--batch-size", "20", "--epochs", "3"],
    "ease": [],
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("rec-train")
    raw = write_ml100k(root / "raw" / "ml-100k", planted_ml100k_ratings())
    assert rbm_prepare.main(["--raw-dir", str(raw.parent), "--data-dir", str(root / "data")]) == 0
    return root / "data"


def train(model, data_dir, run_dir, *extra):
    return rec_train.main(["--model", model, "--data-dir", str(data_dir), "--run-dir", str(run_dir),
                           *SMALL[model], *extra])


@pytest.mark.parametrize("model", ["autorec", "mult-vae", "ease"])
def test_a_short_run_writes_its_metrics_beside_baselines_and_an_export(model, prepared, tmp_path, capsys):
    run_dir = tmp_path / "run"
    # the trained models are exported from their checkpoints, as tfm-export does it
    assert train(model, prepared, run_dir, *([] if model == "ease" else ["--no-export"])) == 0
    out = capsys.readouterr().out
    assert f"{model}: " in out
    final = json.loads((run_dir / "metrics.json").read_text())["final"]
    if model == "autorec":
        assert set(final["baselines"]) == {"global_mean", "user_item_biases"}
        assert 0 < final["test_mae"] <= final["test_rmse"]
        assert final["test_rmse"] < final["baselines"]["global_mean"]["test_rmse"] + 0.5
    else:
        for key in ("test_ndcg_at_10", "test_ndcg_at_100", "test_recall_at_10", "test_recall_at_20",
                    "test_recall_at_50"):
            assert 0 <= final[key] <= 1 and key in final["baselines"]["most_popular"]
    if model == "ease":
        # two taste groups: the movie-to-movie weights find them, popularity cannot
        assert final["test_ndcg_at_10"] > final["baselines"]["most_popular"]["test_ndcg_at_10"] + 0.1
        assert {row["interactions"] for row in final["selection"]} == {"rated", "liked"}
    else:
        assert 1 <= final["best_epoch"] <= 8
    assert "verdict" in final
    if model == "ease":
        assert "exported to" in out and (run_dir / "export" / model / "1" / "saved_model.pb").is_file()
    else:
        assert export.main([str(run_dir)]) == 0
        assert (run_dir / "export" / model / "1" / "saved_model.pb").is_file()
        assert "export" in json.loads((run_dir / "metrics.json").read_text())["final"]


def test_rbm_is_the_rbm_recommenders_own_trainer_and_settings():
    import dataclasses

    from rbm_tf.config import RecommenderConfig
    from rbm_tf.recommender_training import train_recommender

    assert rec_train.load(rec_train.MODELS["rbm"][1]) is train_recommender
    args = rec_train.build_parser().parse_args(
        ["--model", "rbm", "--data-dir", "d", "--run-dir", "r", "--hidden", "8", "--seed", "3"])
    assert rec_train.config_from(args) == dataclasses.replace(RecommenderConfig(), hidden=8, seed=3)


def test_bad_input_gives_one_line_and_exit_code_2(prepared, tmp_path, capsys):
    run = ["--data-dir", str(prepared), "--run-dir", str(tmp_path / "r")]
    fails_with(capsys, rec_train.main, ["--model", "ease", *run, "--dropout", "0.5"],
               "--dropout: not a setting of ease")
    fails_with(capsys, rec_train.main, ["--model", "autorec", *run, "--hidden", "0"],
               "--hidden must be at least 1")
    fails_with(capsys, rec_train.main, ["--model", "mult-vae", *run, "--interactions", "watched"],
               "--interactions must be one of rated, liked")
    fails_with(capsys, rec_train.main, ["--model", "autorec", "--data-dir", str(tmp_path / "none"),
                                        "--run-dir", str(tmp_path / "r")], "rbm-prepare")
    fails_with(capsys, rec_train.main, ["--model", "ease", *run, "--resume"], "cannot be resumed")
    fails_with(capsys, rec_train.main, ["--model", "svd", *run], "invalid choice")
