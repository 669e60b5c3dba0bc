"""Settings of a Deep Belief Network run, and the check of its layer sizes: no TensorFlow.

Errors name the arguments (``finetune_epochs must be at least 1``); a command-line tool maps
them to its flags.
"""

import dataclasses
import math

from pipelines import images
from pipelines.settings import StoredSettings
from pipelines.settings import at_least
from pipelines.settings import positive
from rbm_tf.config import CDConfig

# the values of one image, the visible units of the first RBM
INPUT_WIDTH = math.prod(images.IMAGE_SHAPE)
# the fine-tuned DBN first, then the two baselines it is compared with
CLASSIFIERS = ("dbn", "same_init", "modern")


def check_layer_sizes(layer_sizes, input_width=None):
    """The sizes as a tuple of ints; ValueError unless there are two or more, all positive, and
    the first is `input_width` (the number of values in one example) when that is given."""
    layer_sizes = tuple(int(size) for size in layer_sizes)
    if len(layer_sizes) < 2:
        raise ValueError(f"a DBN needs the input width and at least one hidden layer size, "
                         f"got {list(layer_sizes)}")
    if min(layer_sizes) < 1:
        raise ValueError(f"layer sizes must be positive, got {list(layer_sizes)}")
    if input_width is not None and layer_sizes[0] != input_width:
        raise ValueError(f"the layer sizes start at {layer_sizes[0]} but each example has "
                         f"{input_width} values: the first size must be the data's width")
    return layer_sizes


def _rate(name, value):
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value}")


@dataclasses.dataclass(frozen=True)
class DBNConfig(StoredSettings):
    """A DBN run on MNIST or Fashion-MNIST (defaults chosen by measurement on MNIST).

    hidden: hidden layer sizes, bottom up (the 784 pixels come first by themselves).
    pretrain_epochs: CD epochs per RBM (k, persistent, learning_rate, momentum, weight_decay
    are the CD settings). finetune_*: SGD with momentum of the pre-trained classifier and of
    the same network from random initialisation; modern_*: Adam and dropout of a ReLU network
    of the same widths. gibbs_steps: Gibbs steps in the top RBM for the sample pictures.
    """

    dataset: str = "mnist"
    hidden: tuple = (500, 500, 2000)
    pretrain_epochs: int = 10
    finetune_epochs: int = 30
    k: int = 1
    persistent: bool = False
    learning_rate: float = 0.1
    momentum: float = 0.5
    weight_decay: float = 0.0002
    finetune_learning_rate: float = 0.1
    finetune_momentum: float = 0.9
    finetune_dropout: float = 0.2
    modern_learning_rate: float = 0.001
    modern_dropout: float = 0.2
    batch_size: int = 100
    gibbs_steps: int = 1000
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(int(size) for size in self.hidden))
        images.check_dataset(self.dataset)
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"hidden must list one or more positive hidden layer sizes, "
                             f"got {list(self.hidden)}")
        at_least("pretrain_epochs", self.pretrain_epochs, 0)
        at_least("finetune_epochs", self.finetune_epochs, 1)
        at_least("batch_size", self.batch_size, 1)
        at_least("gibbs_steps", self.gibbs_steps, 0)
        for name in ("finetune_learning_rate", "modern_learning_rate"):
            positive(name, getattr(self, name))
        for name in ("finetune_momentum", "finetune_dropout", "modern_dropout"):
            _rate(name, getattr(self, name))
        self.cd_config()

    @property
    def layer_sizes(self):
        return (INPUT_WIDTH, *self.hidden)

    def cd_config(self):
        """How each RBM learns: CD on pixel intensities, mean-field visible units."""
        return CDConfig(k=self.k, learning_rate=self.learning_rate, momentum=self.momentum,
                        weight_decay=self.weight_decay, persistent=self.persistent,
                        mean_field_visible=True)

    def to_dict(self):
        """The settings as JSON-able values (run_config.json)."""
        return {**dataclasses.asdict(self), "hidden": list(self.hidden)}
