"""One process of the distributed tests: train a tiny RBM recommender and a tiny dense
autoencoder under a strategy, and with --images a tiny DBN run (pre-training and fine-tuning),
write their weights to an .npz.

    python -m tests.distributed_worker --strategy mirrored --cpus 2 --data DIR --out W.npz \
        [--images RECORDS --dbn-run RUN]

Run by tests/test_distribute.py in subprocesses: the logical CPU devices must be set before
TensorFlow starts, and a multi-worker job needs one process per worker (TF_CONFIG).
"""

import argparse
import json
import os

import numpy as np
import tensorflow as tf

# 40 users in batches of 13: the last batch of one user leaves a replica without users
RBM_SETTINGS = dict(hidden=6, batch_size=13, learning_rate=0.1, momentum=0.5, weight_decay=0.01,
                    epochs=2, persistent=True)
IMAGES, AE_BATCH, AE_STEPS = 48, 16, 3
# persistent chains and a last batch of 10 of the 50 images; no dropout, whose masks depend on
# the number of replicas
DBN_SETTINGS = dict(hidden=(16, 8), pretrain_epochs=1, finetune_epochs=1, batch_size=20,
                    persistent=True, finetune_learning_rate=0.5, finetune_dropout=0.0,
                    modern_dropout=0.0, gibbs_steps=3)


def rbm_weights(data_dir, strategy):
    from pipelines.movielens_data import load_movielens
    from rbm_tf import Recommender
    from rbm_tf import RecommenderConfig

    data = load_movielens(data_dir, "ml-100k", "u1")
    config = RecommenderConfig(**RBM_SETTINGS)
    model = Recommender(data.num_movies, config, strategy=strategy)
    model.fit(data.train, epochs=config.epochs)
    return {f"rbm_{index}": value for index, value in enumerate(model.get_weights())}


def autoencoder_weights(strategy):
    import keras

    from autoencoders_tf import DenseAutoencoder
    from pipelines import distribute

    images = np.random.default_rng(0).random([IMAGES, 28, 28, 1]).astype(np.float32)
    keras.utils.set_random_seed(0)
    with distribute.scope(strategy):
        model = DenseAutoencoder(hidden_units=(16,), code_size=4, seed=0)
        # plain SGD: its step shows any mistake in how replicas' gradients are combined
        model.compile(optimizer=keras.optimizers.SGD(0.5))
    dataset = distribute.shardable(tf.data.Dataset.from_tensor_slices(images).batch(AE_BATCH))
    model.fit(dataset, epochs=1, steps_per_epoch=AE_STEPS, verbose=0)
    return {f"ae_{index}": value for index, value in enumerate(model.get_weights())}


def dbn_weights(records_dir, run_dir, strategy):
    """The RBMs ("dbn_rbm_...") and the classifiers ("dbn_classifier_...") of the run's last
    checkpoint, as the chief wrote it."""
    from pipelines.image_data import prepare_images
    from rbm_tf import DBNConfig
    from rbm_tf import train_dbn

    train_dbn(DBNConfig(**DBN_SETTINGS), prepare_images("mnist", records_dir), run_dir,
              export=False, strategy=strategy)
    reader = tf.train.load_checkpoint(os.path.join(run_dir, "checkpoints"))
    weights = {}
    for key in reader.get_variable_to_shape_map():
        name = key.replace("/.ATTRIBUTES/VARIABLE_VALUE", "")
        if name.startswith("pretrainer/dbn/rbms/") and "generator" not in name:
            weights["dbn_rbm_" + name[len("pretrainer/dbn/rbms/"):]] = reader.get_tensor(key)
        elif name.startswith("optimizers/") and "/_trainable_variables/" in name:
            # a classifier's variables: its optimizer tracks them
            weights["dbn_classifier_" + name[len("optimizers/"):]] = reader.get_tensor(key)
    return weights


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--strategy", required=True)
    parser.add_argument("--cpus", type=int, default=1)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--images", help="prepared MNIST-format records: train a DBN too")
    parser.add_argument("--dbn-run", help="the DBN's run directory (written by the chief)")
    args = parser.parse_args()
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.cpus)
    from pipelines import distribute

    strategy = distribute.make_strategy(args.strategy)
    weights = {"replicas": np.array(distribute.num_replicas(strategy))}
    weights.update(rbm_weights(args.data, strategy))
    weights.update(autoencoder_weights(strategy))
    if args.images:
        weights.update(dbn_weights(args.images, args.dbn_run, strategy))
    if distribute.is_chief(strategy):
        np.savez(args.out, **weights)
    print(json.dumps({"task": os.environ.get("TF_CONFIG", ""), "done": True}))


if __name__ == "__main__":
    main()
