"""Tests of tfglv.training.steps on a stand-in model (fast to trace)."""

import keras
import numpy as np
import tensorflow as tf

from tfglv import configs
from tfglv.training import optimizer as optimizer_lib
from tfglv.training import steps

# First pixel values that make the stand-in model misbehave.
NAN_LOSS = 255
NAN_GRADIENT = 254


class QuadraticModel(keras.Model):
  """loss_i = sum_j (x_ij - w_j)^2 + noise, over 3 pixels of each image.

  An image whose first pixel is NAN_LOSS has a NaN loss; NAN_GRADIENT gives
  a finite loss with a NaN gradient.
  """

  def __init__(self):
    super().__init__()
    self.w = self.add_weight(shape=(3,), initializer="zeros", name="w")

  def compute_losses(self, images, seed, training=True, num_samples=1):
    del training, num_samples
    x = tf.cast(images[:, 0, 0, :], tf.float32) / 255.0
    noise = 1e-3 * tf.random.stateless_uniform(tf.shape(x)[:1], seed)
    loss = tf.reduce_sum(tf.square(x - self.w), axis=-1) + noise
    first = images[:, 0, 0, 0]
    loss = tf.where(first == NAN_LOSS, float("nan"), loss)
    w0 = self.w[0]
    loss += tf.where(first == NAN_GRADIENT, tf.sqrt(w0 - w0), 0.0)
    kl = 0.1 * tf.ones_like(loss)
    return {"loss": loss + kl, "nll": loss, "kl": kl}


def images(first_pixels, fill=100):
  batch = np.full((len(first_pixels), 2, 2, 3), fill, np.uint8)
  batch[:, 0, 0, 0] = first_pixels
  batch[:, 0, 0, 1] = np.arange(len(first_pixels)) * 10
  return batch


def make_step(batches, **train_values):
  values = {"train.epsilon": "1.0", "train.warmup_steps": "0",
            "train.weight_decay": "0.0"}
  values.update({f"train.{k}": str(v) for k, v in train_values.items()})
  train = configs.override(configs.get("tiny"), values).train
  strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
  with strategy.scope():
    model = QuadraticModel()
    optimizer = optimizer_lib.build_optimizer(train)
    optimizer.build(model.trainable_variables)
    step = tf.Variable(0, dtype=tf.int64, trainable=False)
    skipped = tf.Variable(0, dtype=tf.int64, trainable=False)
  train_step = steps.TrainStep(model, optimizer, strategy, train,
                               len(batches[0]), step, skipped)
  dataset = tf.data.Dataset.from_tensor_slices(
      {"image": np.stack(batches)})
  iterator = iter(strategy.experimental_distribute_dataset(
      dataset.unbatch().batch(len(batches[0]))))
  return train_step, iterator, model, optimizer, step, skipped


def test_non_finite_steps_are_skipped_and_counted():
  batches = [images([1, 2]), images([NAN_LOSS, 2]), images([NAN_GRADIENT, 3]),
             images([4, 5])]
  train_step, iterator, model, optimizer, step, skipped = make_step(batches)
  history = []
  for _ in batches:
    metrics = train_step.train_step(iterator)
    history.append((model.w.numpy().copy(), int(optimizer.iterations),
                    float(metrics["finite"]), float(metrics["loss"])))
  assert [h[2] for h in history] == [1.0, 0.0, 0.0, 1.0]
  assert np.isnan(history[1][3]) and np.isfinite(history[2][3])
  assert int(skipped.numpy()) == 2 and int(step.numpy()) == 4
  assert [h[1] for h in history] == [1, 1, 1, 2]  # No update when skipped.
  np.testing.assert_array_equal(history[1][0], history[0][0])
  np.testing.assert_array_equal(history[2][0], history[0][0])
  assert not np.array_equal(history[3][0], history[0][0])


def test_gradient_accumulation_matches_one_batch():
  batch = images([10, 20, 30, 40])
  results = {}
  for accumulation in (1, 2, 4):
    train_step, iterator, model, _, _, _ = make_step(
        [batch], grad_accumulation=accumulation)
    metrics = train_step.train_step(iterator)
    results[accumulation] = (model.w.numpy(), float(metrics["loss"]),
                             float(metrics["gradient_norm"]))
  for accumulation in (2, 4):
    np.testing.assert_allclose(results[accumulation][0], results[1][0],
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(results[accumulation][2], results[1][2],
                               rtol=1e-5)
  # The loss includes the per-micro-batch noise, drawn from other seeds.
  np.testing.assert_allclose(results[2][1], results[1][1], atol=2e-3)


def test_gradient_clipping_limits_the_update():
  batch = images([200, 210])
  moved = {}
  for clip in (0.0, 1e-3):
    train_step, iterator, model, _, _, _ = make_step(
        [batch], grad_clip_norm=clip, learning_rate=0.1)
    metrics = train_step.train_step(iterator)
    moved[clip] = np.linalg.norm(model.w.numpy())
    norm = float(metrics["gradient_norm"])
  assert norm > 1.0  # Reported before clipping.
  # With epsilon 1, Adam's first update is ~ lr * g / (|g| + 1).
  assert moved[1e-3] < moved[0.0] / 100


def test_step_seeds_differ_across_steps_replicas_and_micro_batches():
  seeds = {(s, r, m): tuple(steps.step_seed(7, s, r, m).numpy())
           for s in (0, 1) for r in (0, 1) for m in (0, 1)}
  assert len(set(seeds.values())) == len(seeds)
  assert tuple(steps.step_seed(7, 1, 1, 0).numpy()) == seeds[(1, 1, 0)]
  assert tuple(steps.step_seed(8, 1, 1, 0).numpy()) != seeds[(1, 1, 0)]
