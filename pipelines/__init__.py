"""Raw data files -> TFDS builders -> tf.data pipelines. Knows no model."""
