"""A monitor of RBM learning beside `training.reconstruction_error`: exact pseudo-log-likelihood.

The log-likelihood of an RBM needs its partition function, which is intractable at MNIST sizes
(an AIS estimate is only as good as its annealing schedule, and a bad one looks like a good
model). The pseudo-log-likelihood needs none: sum_i log p(v_i | v_-i) depends on free-energy
differences only, and is computed here exactly, over every visible unit, not from one random
flip per example.
"""

import tensorflow as tf

from rbm_tf.rbm import RBM

# bounds the [rows, num_visible, num_hidden] tensor of flipped pre-activations (64 MB float32)
_MAX_FLIPPED_VALUES = 1 << 24


def binarize(probability, seed=(0, 0)):
    """A Bernoulli sample of `probability` drawn with a fixed stateless seed (the same every call)."""
    probability = tf.convert_to_tensor(probability, tf.float32)
    uniform = tf.random.stateless_uniform(tf.shape(probability), seed=seed)
    return tf.cast(uniform < probability, tf.float32)


def pseudo_log_likelihood(rbm: RBM, visible):
    """sum_i log p(v_i | v_-i) of binary visible vectors [batch, num_visible] -> [batch] (nats).

    Flipping unit i changes the free energy by a_i s_i plus the change in the hidden softplus
    terms, where s_i = 1 - 2 v_i; p(v_i | v_-i) = sigmoid(F(v with i flipped) - F(v)).
    Only for the "single" layout (a pair of units is one value: flipping one alone is no state).
    """
    if rbm.visible_layout != "single":
        raise ValueError("pseudo_log_likelihood needs an RBM with the 'single' visible layout")
    visible = tf.convert_to_tensor(visible, tf.float32)
    rows_per_chunk = max(1, _MAX_FLIPPED_VALUES // (rbm.num_visible * rbm.num_hidden))
    chunks = [_pseudo_log_likelihood_rows(rbm, visible[start:start + rows_per_chunk])
              for start in range(0, int(visible.shape[0]), rows_per_chunk)]
    return tf.concat(chunks, axis=0)


def _pseudo_log_likelihood_rows(rbm, visible):
    pre_activation = tf.matmul(visible, rbm.weights) + rbm.hidden_bias  # [batch, hidden]
    flip = 1.0 - 2.0 * visible  # [batch, visible]
    flipped = pre_activation[:, tf.newaxis, :] + flip[:, :, tf.newaxis] * rbm.weights[tf.newaxis]
    # F(v_flipped) - F(v) for every unit i: [batch, visible]
    energy_gap = (-flip * rbm.visible_bias
                  - tf.reduce_sum(tf.math.softplus(flipped), axis=-1)
                  + tf.reduce_sum(tf.math.softplus(pre_activation), axis=-1, keepdims=True))
    return tf.reduce_sum(tf.math.log_sigmoid(energy_gap), axis=-1)
