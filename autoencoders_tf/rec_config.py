"""Settings of the autoencoder recommenders (I-AutoRec, Mult-VAE, EASE): dataclasses, no TensorFlow.

Each config names its model (``model``), the key of `train_rec_model`'s runs and of
run_config.json. Errors name the arguments (``hidden must be at least 1``); a command-line
tool maps them to its flags. Defaults were chosen on validation ratings of ML-100K u1 (the
README's "What was chosen on validation"), never on test ratings.
"""

import dataclasses
from typing import Optional

from pipelines.settings import StoredSettings
from pipelines.settings import at_least
from pipelines.settings import one_of
from pipelines.settings import positive

# what a user's binary vector holds: every movie rated, or only the liked ones
INTERACTIONS = ("rated", "liked")


def _check_training(config):
    for name in ("epochs", "batch_size", "patience"):
        at_least(name, getattr(config, name), 1)
    positive("learning_rate", config.learning_rate)


@dataclasses.dataclass(frozen=True)
class AutoRecConfig(StoredSettings):
    """I-AutoRec (Sedhain et al. 2015): one case per movie, its vector of training users'
    ratings; `hidden` sigmoid units, identity output, squared error on observed ratings only.

    `l2`: the penalty on the weights, (l2 / 2) |W|^2 beside the mean squared error of a batch's
    observed ratings. `dropout` drops input ratings in training (the paper has none: on
    ML-100K u1 without it the network learns to copy each rating through, reaching a training
    RMSE of 0.5 and no better than 0.955 on validation). `center` feeds ratings less the mean
    training rating (0 = not rated then means "as usual"); it measured worse on validation, so
    a missing rating is 0 stars, as in the paper. `biases`: the network's targets are the
    ratings less the user + movie biases model (mean + b_user + b_movie, L2 `bias_l2` on the
    biases; `pipelines.rating_eval.RatingBiases`), added back to its predictions; its inputs
    stay the stars. `members` networks (seeds seed, seed + 2, ...) learn side by side, each on
    its own loss and its own shuffle of the movies, and predict the mean of theirs (an
    ensemble). `batch_size` counts movies.
    Training stops when the validation RMSE of the members' mean has not improved for
    `patience` epochs (at most `epochs`), keeping the best epoch's weights.
    `fold_in_l2`: the ridge penalty with which a user never seen in training gets a decoder
    column of their own, fitted to their ratings. The defaults were chosen on ML-100K u1's
    validation ratings, one change at a time (validation RMSE: learning rate 1e-3 0.939, 5e-4
    0.942, 3e-3 0.946; at 3e-3, 1,000 hidden units 0.954, L2 3e-4 0.951 and 3e-3 0.957,
    dropout 0.3 0.946 and 0.7 0.950; at 1e-3, dropout 0.3 0.943, L2 3e-4 0.953, batches of 128
    movies 0.946, and a patience of 20 keeps the same best epoch). Then, at learning rate 1e-3:
    halving the learning rate after 3 epochs without improvement (ReduceLROnPlateau, patience
    20) 0.943, dividing it by 3 after 2 (patience 15) 0.961; `biases` 0.931 (bias_l2 10 0.931;
    biases subtracted from the inputs too 0.947; with them 1,000 hidden units 0.935, L2 3e-3
    0.932, halving the learning rate after 5 epochs without improvement 0.930); with them 5
    `members` 0.9265 (10: 0.9263; 5 with dropout 0.3 0.928, with the learning rate halved after
    5 epochs without improvement and patience 20 0.926), all on the same batches; each member
    on its own shuffle of the movies 0.9252.
    """

    hidden: int = 500
    members: int = 5
    l2: float = 1e-3
    dropout: float = 0.5
    center: bool = False
    biases: bool = True
    bias_l2: float = 3.0
    learning_rate: float = 1e-3
    batch_size: int = 256
    epochs: int = 200
    patience: int = 10
    seed: int = 0
    fold_in_l2: float = 30.0

    model = "autorec"

    def __post_init__(self):
        at_least("hidden", self.hidden, 1)
        at_least("members", self.members, 1)
        _check_training(self)
        if not self.l2 >= 0:
            raise ValueError(f"l2 must be >= 0, got {self.l2}")
        positive("fold_in_l2", self.fold_in_l2)
        positive("bias_l2", self.bias_l2)
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


@dataclasses.dataclass(frozen=True)
class MultVAEConfig(StoredSettings):
    """Mult-VAE (Liang et al. 2018): a multinomial likelihood over each user's `interactions`,
    encoder num_movies -> `hidden` -> `latent_dim` (tanh), the decoder its mirror, `dropout` on
    the normalised input. The KL term's weight rises linearly from 0 to `anneal_cap` over
    `anneal_steps` updates. `batch_size` counts users. Training stops when the validation
    NDCG@10 has not improved for `patience` epochs, keeping the best epoch's weights.
    On ML-100K u1 "rated" and "liked" measured 0.194 and 0.191 validation NDCG@10.
    """

    hidden: int = 600
    latent_dim: int = 200
    dropout: float = 0.5
    anneal_cap: float = 0.2
    anneal_steps: int = 2000
    interactions: str = "rated"
    learning_rate: float = 1e-3
    batch_size: int = 100
    epochs: int = 200
    patience: int = 20
    seed: int = 0

    model = "mult-vae"

    def __post_init__(self):
        at_least("hidden", self.hidden, 1)
        at_least("latent_dim", self.latent_dim, 1)
        at_least("anneal_steps", self.anneal_steps, 1)
        one_of("interactions", self.interactions, INTERACTIONS)
        _check_training(self)
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.anneal_cap >= 0:
            raise ValueError(f"anneal_cap must be >= 0, got {self.anneal_cap}")


@dataclasses.dataclass(frozen=True)
class EASEConfig(StoredSettings):
    """EASE (Steck 2019): the closed-form item-item model of the binary user x movie matrix of
    training `interactions` with L2 strength `l2`. None chooses it on the validation NDCG@10:
    `l2` among `L2_CHOICES`, `interactions` among rated and liked."""

    l2: Optional[float] = None
    interactions: Optional[str] = None

    model = "ease"
    L2_CHOICES = (10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0)

    def __post_init__(self):
        if self.l2 is not None:
            positive("l2", self.l2)
        if self.interactions is not None:
            one_of("interactions", self.interactions, INTERACTIONS)


CONFIGS = {config.model: config for config in (AutoRecConfig, MultVAEConfig, EASEConfig)}
