"""Settings of an autoencoder training run: a plain dataclass, no TensorFlow.

Errors name the arguments (``batch_size must be at least 1``); a command-line tool maps them
to its flags. The models' constructors check their arguments with the same rules.
"""

import dataclasses

from pipelines.settings import StoredSettings
from pipelines.settings import at_least
from pipelines.settings import one_of
from pipelines.settings import positive

MODELS = ("dense", "conv", "denoising", "vae")
# the model directory of each family under an export base: BASE/<name>/<version>/
EXPORT_NAMES = {"dense": "dense_autoencoder", "conv": "conv_autoencoder",
                "denoising": "denoising_autoencoder", "vae": "vae"}
# "symmetric": the network sees [-1, 1] and ends in tanh; "unit": [0, 1] and a sigmoid
INPUT_RANGES = ("unit", "symmetric")
# what a denoising autoencoder denoises with, and the noise it learns to remove
ARCHITECTURES = ("dense", "conv")
NOISE_KINDS = ("gaussian", "masking")


def check_noise_level(noise, noise_level):
    """ValueError unless `noise_level` suits `noise`: positive, and at most 1 for masking."""
    if not 0.0 < noise_level <= (1.0 if noise == "masking" else float("inf")):
        raise ValueError(f"noise level must be positive (at most 1 for masking), got {noise_level}")


@dataclasses.dataclass(frozen=True)
class AutoencoderConfig(StoredSettings):
    """Model and training settings; every field is stored in RUN/run_config.json.

    model: dense (784-128-64-12-3 by default), conv (32-d code), denoising (`architecture` fed
    `noise` of `noise_level`) or vae (784-`vae_hidden`-`latent_dim`, binarised pixels unless
    `binarize` is False). `input_range` is the range the dense, conv and denoising networks
    work in. `iw_samples`: posterior samples per test image of the VAE's importance-weighted
    bound.
    """

    model: str = "dense"
    epochs: int = 10
    batch_size: int = 100
    learning_rate: float = 1e-3
    seed: int = 0
    input_range: str = "symmetric"
    hidden_units: tuple = (128, 64, 12)
    code_size: int = 3
    architecture: str = "conv"
    noise: str = "gaussian"
    noise_level: float = 0.5
    vae_hidden: int = 400
    latent_dim: int = 20
    binarize: bool = True
    iw_samples: int = 100

    def __post_init__(self):
        one_of("model", self.model, MODELS)
        one_of("input_range", self.input_range, INPUT_RANGES)
        one_of("architecture", self.architecture, ARCHITECTURES)
        one_of("noise", self.noise, NOISE_KINDS)
        check_noise_level(self.noise, self.noise_level)
        object.__setattr__(self, "hidden_units", tuple(int(u) for u in self.hidden_units))
        for name in ("epochs", "batch_size", "code_size", "vae_hidden", "latent_dim", "iw_samples"):
            at_least(name, getattr(self, name), 1)
        if any(units < 1 for units in self.hidden_units):
            raise ValueError(f"hidden_units must be at least 1 each, got {list(self.hidden_units)}")
        positive("learning_rate", self.learning_rate)

    @property
    def export_name(self):
        return EXPORT_NAMES[self.model]
