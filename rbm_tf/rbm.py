"""A Restricted Boltzmann Machine with Bernoulli hidden units, as a `tf.Module`.

Visible data come as a float tensor ``visible`` of shape [batch, num_visible] with values in
[0, 1] (0/1 ratings, or pixel intensities read as probabilities), and an optional boolean
``mask`` of the same shape that is False where a value is missing. A missing unit never
contributes: its stored value is replaced by `tf.where` before any arithmetic, so whatever
is stored there (the pipelines use -1) changes no hidden activation, sample, gradient or
free energy.

Two layouts of visible units:

* ``"single"``: one Bernoulli unit per visible value (the classic RBM; the only layout for
  images).
* ``"pair"``: two units per value, "1" and "0", forming a two-way softmax (Salakhutdinov,
  Mnih & Hinton 2007). With one unit a 0 adds nothing to ``v @ W`` and so looks exactly
  like a missing value; with a pair, a known 0 (a dislike) reaches the hidden layer.
"""

import tensorflow as tf

from rbm_tf.config import VISIBLE_LAYOUTS


class RBM(tf.Module):
    """Restricted Boltzmann Machine: weights, visible and hidden biases, Gibbs sampling.

    Args:
      num_visible: number of visible values (movies, or pixels).
      num_hidden: number of Bernoulli hidden units.
      visible_layout: "single" or "pair" (see the module docstring).
      weight_stddev: standard deviation of the initial N(0, s^2) weights.
      seed: seed of the random generator used for every sample the model draws.
    """

    def __init__(self, num_visible, num_hidden, visible_layout="pair", weight_stddev=0.01,
                 seed=0, name=None):
        super().__init__(name=name)
        if visible_layout not in VISIBLE_LAYOUTS:
            raise ValueError(f"visible_layout must be one of {VISIBLE_LAYOUTS}, got {visible_layout!r}")
        if num_visible < 1 or num_hidden < 1:
            raise ValueError(f"an RBM needs at least one visible and one hidden unit, "
                             f"got {num_visible} and {num_hidden}")
        self.num_visible = int(num_visible)
        self.num_hidden = int(num_hidden)
        self.visible_layout = visible_layout
        self.units_per_visible = 2 if visible_layout == "pair" else 1
        num_units = self.num_visible * self.units_per_visible
        self.generator = tf.random.Generator.from_seed(seed)
        self.weights = tf.Variable(
            self.generator.normal([num_units, self.num_hidden], stddev=weight_stddev),
            name="weights")
        self.visible_bias = tf.Variable(tf.zeros([num_units]), name="visible_bias")
        self.hidden_bias = tf.Variable(tf.zeros([self.num_hidden]), name="hidden_bias")

    def get_config(self):
        """The constructor arguments that fix the variables' shapes."""
        return {"num_visible": self.num_visible, "num_hidden": self.num_hidden,
                "visible_layout": self.visible_layout}

    def set_visible_bias_from_rates(self, rates):
        """Start each visible bias at the log-odds of its value's mean (Hinton's practical guide).

        ``rates``: [num_visible] mean of each visible value over the training data; clipped
        away from 0 and 1 so that a value never (or always) seen gets a finite bias.
        """
        rates = tf.clip_by_value(tf.cast(rates, tf.float32), 1e-3, 1.0 - 1e-3)
        if self.visible_layout == "single":
            bias = tf.math.log(rates) - tf.math.log1p(-rates)
        else:
            # softmax over (one, zero): p(one) = exp(a1) / (exp(a1) + exp(a0)) = rate
            bias = tf.reshape(tf.stack([tf.math.log(rates), tf.math.log1p(-rates)], axis=-1), [-1])
        self.visible_bias.assign(bias)

    # -- the units ---------------------------------------------------------------------------

    def visible_units(self, visible, mask=None):
        """Visible values as unit activations [batch, num_visible * units], 0 where missing."""
        visible = tf.convert_to_tensor(visible, tf.float32)
        if mask is not None:
            visible = tf.where(mask, visible, tf.zeros_like(visible))
        if self.visible_layout == "single":
            return visible
        units = tf.stack([visible, 1.0 - visible], axis=-1)
        if mask is not None:
            units = tf.where(mask[..., tf.newaxis], units, tf.zeros_like(units))
        return tf.reshape(units, [-1, self.num_visible * 2])

    def hidden_probability(self, visible, mask=None):
        """p(h_j = 1 | v): [batch, num_hidden]."""
        units = self.visible_units(visible, mask)
        return tf.sigmoid(tf.matmul(units, self.weights) + self.hidden_bias)

    def visible_probability(self, hidden, offset=None):
        """p(v_i = 1 | h) for every visible value: [batch, num_visible].

        ``offset`` [batch], when given, is added to every value's log-odds of 1 in that case:
        a per-case visible bias (the recommender's user offset), 0 meaning none.
        """
        logits = tf.matmul(hidden, self.weights, transpose_b=True) + self.visible_bias
        if self.visible_layout == "pair":
            logits = tf.reshape(logits, [-1, self.num_visible, 2])
            logits = logits[..., 0] - logits[..., 1]
        if offset is not None:
            logits += offset[:, tf.newaxis]
        return tf.sigmoid(logits)

    def _bernoulli(self, probability):
        return tf.cast(self.generator.uniform(tf.shape(probability)) < probability, tf.float32)

    def sample_hidden(self, visible, mask=None):
        """Hidden probabilities and a Bernoulli sample of them."""
        probability = self.hidden_probability(visible, mask)
        return probability, self._bernoulli(probability)

    def sample_visible(self, hidden, mask=None, visible=None, offset=None):
        """Visible probabilities and a sample; where ``mask`` is False the sample keeps ``visible``.

        With the pair layout a sample of the two-way softmax is one Bernoulli draw of "1".
        """
        probability = self.visible_probability(hidden, offset)
        sample = self._bernoulli(probability)
        if mask is not None:
            sample = tf.where(mask, sample, visible)
        return probability, sample

    def free_energy(self, visible, mask=None, offset=None):
        """F(v) = -a.v - o.sum_i v_i - sum_j softplus(b_j + (vW)_j), over observed units: [batch].

        ``offset`` [batch] is the per-case bias of `visible_probability` (default 0).
        """
        units = self.visible_units(visible, mask)
        visible_term = tf.linalg.matvec(units, self.visible_bias)
        if offset is not None:
            ones = units if self.visible_layout == "single" else units[:, 0::2]
            visible_term += offset * tf.reduce_sum(ones, axis=-1)
        hidden_term = tf.reduce_sum(
            tf.math.softplus(tf.matmul(units, self.weights) + self.hidden_bias), axis=-1)
        return -visible_term - hidden_term

    def reconstruct(self, visible, mask=None, offset=None):
        """Deterministic mean-field up-down pass: p(v = 1 | E[h | v]) for every visible value.

        This is the model's prediction (the like-probability of every movie from a user's known
        ratings): Bernoulli samples as predictions only add noise.
        """
        return self.visible_probability(self.hidden_probability(visible, mask), offset)

    # -- learning ----------------------------------------------------------------------------

    def contrastive_divergence(self, visible, mask=None, k=1, chain_start=None,
                               mean_field_visible=False, offset=None):
        """Gradients of the negative log-likelihood estimated by CD-k (or PCD), batch-averaged.

        The chain starts from a hidden sample given the data, or from ``chain_start`` (a hidden
        state [batch, num_hidden], for persistent CD). Visible units are sampled at each Gibbs
        step, or with ``mean_field_visible`` replaced by their probabilities (Hinton's practical
        guide for pixel intensities: less sampling noise in the negative statistics); missing
        ones stay missing. The statistics use hidden probabilities. ``offset`` is the per-case
        visible bias of `visible_probability`, a fixed input of the model (no gradient).

        Returns (gradients, chain_end): ``gradients`` is a list matching ``self.variables_for_
        training`` (weights, visible bias, hidden bias), signed for minimisation so an optimizer
        can apply them; ``chain_end`` is the last hidden sample (the next persistent state).
        """
        visible = tf.convert_to_tensor(visible, tf.float32)
        batch_size = tf.cast(tf.shape(visible)[0], tf.float32)
        positive_units = self.visible_units(visible, mask)
        positive_hidden, hidden = self.sample_hidden(visible, mask)
        if chain_start is not None:
            hidden = chain_start
        negative_visible = visible
        negative_hidden = positive_hidden
        for _ in range(k):
            if mean_field_visible:
                negative_visible = self.visible_probability(hidden, offset)
                if mask is not None:
                    negative_visible = tf.where(mask, negative_visible, visible)
            else:
                _, negative_visible = self.sample_visible(hidden, mask, visible, offset)
            negative_hidden, hidden = self.sample_hidden(negative_visible, mask)
        negative_units = self.visible_units(negative_visible, mask)
        weights_gradient = -(tf.matmul(positive_units, positive_hidden, transpose_a=True)
                             - tf.matmul(negative_units, negative_hidden, transpose_a=True)) / batch_size
        visible_bias_gradient = -tf.reduce_mean(positive_units - negative_units, axis=0)
        hidden_bias_gradient = -tf.reduce_mean(positive_hidden - negative_hidden, axis=0)
        return [weights_gradient, visible_bias_gradient, hidden_bias_gradient], hidden

    @property
    def variables_for_training(self):
        """The variables CD updates, in the order `contrastive_divergence` returns gradients."""
        return [self.weights, self.visible_bias, self.hidden_bias]
