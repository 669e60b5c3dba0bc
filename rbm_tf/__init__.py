"""Restricted Boltzmann Machines and Deep Belief Networks as tf.Modules."""
