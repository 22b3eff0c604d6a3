"""The update shared by the trainer and Keras fit (tfglv.update_step).

The trainer's step over it is tested in tests/training/test_steps.py, fit's
in tests/test_keras_fit.py; these are its pieces on a stand-in model.
"""

import numpy as np
import tensorflow as tf

from tfglv import update_step


class _PixelModel:
  """loss_i = mean pixel of image i / 255 * w; nll = loss, kl = 0."""

  def __init__(self):
    self.w = tf.Variable(2.0)

  def compute_losses(self, images, seed, training=False, num_samples=1):
    del seed, training
    loss = tf.reduce_mean(tf.cast(images, tf.float32), [1, 2, 3]) / 255.0
    loss = loss * self.w * float(num_samples)
    return {"loss": loss, "iw_loss": loss, "nll": loss,
            "kl": tf.zeros_like(loss)}


def test_apply_or_skip_applies_only_finite_updates():
  strategy = tf.distribute.get_strategy()
  counter = tf.Variable(0)

  @tf.function
  def step(finite):
    return update_step.apply_or_skip(
        strategy, finite, lambda amount: counter.assign_add(amount), (3,))

  assert int(step(tf.constant(True))) == 0 and int(counter.numpy()) == 3
  assert int(step(tf.constant(False))) == 1 and int(counter.numpy()) == 3


def test_replica_gradients_are_of_the_mean_loss_and_clipped():
  model = _PixelModel()
  images = np.full((4, 2, 2, 1), 255, np.uint8)
  for clip_norm, expected_norm in ((0.0, 0.5), (0.1, 0.1)):
    grads, finite, metrics = update_step.replica_gradients(
        model, tf.constant(images), 0, [model.w], seed=0,
        global_batch_size=8, clip_norm=clip_norm)
    # d/dw sum_i (w * 1) / 8 over 4 of the 8 images of the global batch.
    assert bool(finite) and float(metrics["gradient_norm"]) == 0.5
    assert float(metrics["loss"]) == 1.0
    np.testing.assert_allclose(float(grads[0]), expected_norm, rtol=1e-6)


def test_replica_loss_sums_count_images_and_pass_empty_batches():
  model = _PixelModel()
  sums = tf.function(update_step.replica_loss_sums)
  full = sums(model, tf.fill([3, 2, 2, 1], tf.constant(255, tf.uint8)),
              tf.constant([0, 0]), 2)
  assert float(full["count"]) == 3 and float(full["loss"]) == 12.0
  empty = sums(model, tf.zeros([0, 2, 2, 1], tf.uint8), tf.constant([0, 0]),
               2)
  assert {key: float(value) for key, value in empty.items()} == {
      "loss": 0.0, "iw_loss": 0.0, "nll": 0.0, "kl": 0.0, "count": 0.0}
