"""tfglv.loss_scale: dynamic loss scaling of float16 coupling networks."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfglv
from tfglv import configs
from tfglv import loss_scale
from tfglv import rundir
from tfglv import update_step
from tfglv.training import optimizer as optimizer_lib
from tfglv.training import steps


def _optimizer(variables=()):
  optimizer = optimizer_lib.ReducedGradientAdamW(learning_rate=1e-3)
  optimizer.build(list(variables))
  return optimizer


class _Float16Config:
  """What `loss_scale.for_model` reads of a model's config."""

  class decoder:  # pylint: disable=invalid-name
    compute_dtype = "float16"


# The stand-in's loss factor: its gradients reach float16 tensors far
# below float16's smallest subnormal (6e-8), so unscaled they are zero.
SMALL = 1e-8


class Float16Model(keras.Model):
  """loss_i = SMALL * sum_j (x_ij - w_j)^2, computed in float16.

  An image whose first pixel is 255 gives a finite loss with a NaN
  gradient.
  """

  config = _Float16Config

  def __init__(self):
    super().__init__()
    self.w = self.add_weight(shape=(3,), initializer="zeros", name="w")

  def compute_losses(self, images, seed, training=True, num_samples=1):
    del seed, training, num_samples
    x = tf.cast(images[:, 0, 0, :], tf.float16) / 255.0
    squares = tf.square(x - tf.cast(self.w, tf.float16))
    loss = SMALL * tf.reduce_sum(tf.cast(squares, tf.float32), axis=-1)
    w0 = self.w[0]
    loss += tf.where(images[:, 0, 0, 0] == 255, tf.sqrt(w0 - w0), 0.0)
    return {"loss": loss, "nll": loss, "kl": tf.zeros_like(loss)}


def test_only_float16_networks_get_a_scale_one_per_optimizer():
  optimizer = _optimizer()
  for dtype in ("float32", "bfloat16"):
    config = configs.override(configs.get("tiny"),
                              {"decoder.compute_dtype": dtype}).model
    assert loss_scale.for_model(tfglv.build_model(config), optimizer) is None
  assert len(optimizer.variables) == 2  # iterations, learning rate
  model = Float16Model()
  scale = loss_scale.for_model(model, optimizer)
  assert loss_scale.for_model(model, optimizer) is scale
  assert float(scale.scale.numpy()) == loss_scale.INITIAL_SCALE
  assert [v.name for v in optimizer.variables[2:]] == [
      "loss_scale", "loss_scale_good_steps"]


@pytest.mark.parametrize("kwargs, message", [
    (dict(initial_scale=3.0), "power of two"),
    (dict(initial_scale=0.5), "power of two"),
    (dict(initial_scale=2.0 ** 30), "power of two"),
    (dict(growth_steps=0), "growth_steps must be an int >= 1"),
    (dict(growth_steps=2.5), "growth_steps must be an int >= 1"),
])
def test_bad_arguments(kwargs, message):
  with pytest.raises(ValueError, match=message):
    loss_scale.DynamicLossScale(_optimizer(), **kwargs)


def test_scaled_gradients_equal_plain_ones_in_float32():
  w = tf.Variable([0.3, -1.7, 2.5])
  scale = loss_scale.DynamicLossScale(_optimizer())
  grads = []
  for scaled in (False, True):
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(tf.sin(w) * w) / 3.0
    grads.append(scale.gradients(tape, loss, [w])[0] if scaled
                 else tape.gradient(loss, w))
  # The scale is a power of two: scaling and unscaling are exact.
  np.testing.assert_array_equal(grads[1].numpy(), grads[0].numpy())


def test_scaling_keeps_float16_gradients_from_underflowing():
  model = Float16Model()
  batch = np.full((2, 2, 2, 3), 200, np.uint8)
  scale = loss_scale.DynamicLossScale(_optimizer())
  grads = []
  for scaled in (False, True):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(model.compute_losses(batch, None)["loss"])
    grads.append((scale.gradients(tape, loss, model.trainable_variables)
                  if scaled else tape.gradient(
                      loss, model.trainable_variables))[0].numpy())
  # d loss / d w_j = -2 SMALL (x_j - w_j), x = 200/255, w = 0.
  np.testing.assert_array_equal(grads[0], 0.0)
  np.testing.assert_allclose(grads[1], -2 * SMALL * 200 / 255, rtol=2e-3)


def test_scale_halves_when_not_finite_and_doubles_after_growth_steps():
  scale = loss_scale.DynamicLossScale(_optimizer(), initial_scale=4.0,
                                      growth_steps=3)
  history = []
  for finite in [True, True, False, True, True, True, True, False, False,
                 False, False]:
    scale.update(tf.constant(finite))
    history.append((float(scale.scale.numpy()),
                    int(scale.good_steps.numpy())))
  assert history == [(4, 1), (4, 2), (2, 0), (2, 1), (2, 2), (4, 0), (4, 1),
                     (2, 0), (1, 0), (1, 0), (1, 0)]  # never below 1
  top = loss_scale.DynamicLossScale(_optimizer(),
                                    initial_scale=loss_scale.MAX_SCALE,
                                    growth_steps=1)
  top.update(tf.constant(True))
  assert float(top.scale.numpy()) == loss_scale.MAX_SCALE


def _train_step(model, batch_size, **train_values):
  values = {"train.warmup_steps": "0", "train.weight_decay": "0.0"}
  values.update({f"train.{k}": str(v) for k, v in train_values.items()})
  train = configs.override(configs.get("tiny"), values).train
  strategy = tf.distribute.get_strategy()  # The default one.
  optimizer = optimizer_lib.build_optimizer(train)
  optimizer.build(model.trainable_variables)
  step = tf.Variable(0, dtype=tf.int64, trainable=False)
  skipped = tf.Variable(0, dtype=tf.int64, trainable=False)
  train_step = steps.TrainStep(model, optimizer, strategy, train, batch_size,
                               step, skipped)
  return train_step, optimizer, step, skipped


def _iterator(batches):
  return iter(tf.data.Dataset.from_tensor_slices(np.stack(batches)).map(
      lambda images: {"image": images}))


def test_trainer_skips_an_overflowing_step_and_halves_the_scale():
  model = Float16Model()
  train_step, optimizer, step, skipped = _train_step(model, 2)
  assert train_step.loss_scale is not None
  batches = [np.full((2, 2, 2, 3), value, np.uint8)
             for value in (200, 255, 100)]
  iterator = _iterator(batches)
  history = []
  for _ in batches:
    metrics = train_step.train_step(iterator)
    history.append((float(metrics["finite"]), int(optimizer.iterations),
                    float(train_step.loss_scale.scale.numpy()),
                    float(metrics["gradient_norm"])))
  initial = loss_scale.INITIAL_SCALE
  assert [h[:3] for h in history] == [(1.0, 1, initial),
                                      (0.0, 1, initial / 2),
                                      (1.0, 2, initial / 2)]
  # The update saw the unscaled gradient (float16 alone would give 0).
  assert 0 < history[0][3] < 1e-5
  assert int(skipped.numpy()) == 1 and int(step.numpy()) == 3
  assert int(train_step.loss_scale.good_steps.numpy()) == 1


def test_apply_or_skip_updates_the_scale_after_the_decision():
  scale = loss_scale.DynamicLossScale(_optimizer(), initial_scale=8.0)
  applied = []
  strategy = tf.distribute.get_strategy()
  for finite in (True, False):
    skipped = update_step.apply_or_skip(
        strategy, tf.constant(finite), lambda: applied.append(1), (),
        loss_scale=scale)
    assert int(skipped) == (0 if finite else 1)
  assert applied == [1]
  assert float(scale.scale.numpy()) == 4.0


def test_the_scale_is_checkpointed_state(tmp_path):
  model = Float16Model()
  optimizer = _optimizer(model.trainable_variables)
  scale = loss_scale.for_model(model, optimizer)
  scale.update(tf.constant(False))
  for _ in range(5):
    scale.update(tf.constant(True))
  path = rundir.make_checkpoint(model, optimizer).save(str(tmp_path / "c"))
  restored_optimizer = _optimizer(model.trainable_variables)
  restored = loss_scale.for_model(model, restored_optimizer)
  assert float(restored.scale.numpy()) == loss_scale.INITIAL_SCALE
  status = rundir.make_checkpoint(model, restored_optimizer).restore(path)
  status.assert_existing_objects_matched()
  assert float(restored.scale.numpy()) == loss_scale.INITIAL_SCALE / 2
  assert int(restored.good_steps.numpy()) == 5


def test_float16_glvae_trains_finite_steps():
  config = configs.override(configs.get("tiny"), {
      "image_size": "16", "decoder.compute_dtype": "float16"}).model
  model = tfglv.build_model(config)
  rng = np.random.RandomState(0)
  batch = rng.randint(0, 256, (4, 16, 16, 3)).astype(np.uint8)
  model.initialize(batch)
  train_step, optimizer, _, skipped = _train_step(model, 4)
  network = model.decoder.level_steps[1][0][0].coupling_continuous_up.network
  assert network.compute_dtype == "float16"
  iterator = _iterator([batch] * 3)
  losses = [float(train_step.train_step(iterator)["loss"]) for _ in range(3)]
  assert all(np.isfinite(losses)) and 0 < losses[0] < 20, losses
  assert int(skipped.numpy()) == 0 and int(optimizer.iterations) == 3
  assert float(train_step.loss_scale.scale.numpy()) == \
      loss_scale.INITIAL_SCALE
  assert all(np.isfinite(v.numpy()).all() for v in model.trainable_variables)


def test_keras_fit_scales_the_loss_and_saves_the_scale(tmp_path):
  config = configs.override(configs.get("tiny", model="glow"), {
      "image_size": "16", "decoder.compute_dtype": "float16"}).model
  model = tfglv.build_model(config)
  images = np.random.RandomState(1).randint(0, 256, (8, 16, 16, 3))
  model.compile(optimizer=keras.optimizers.Adam(1e-3))
  scale = model._fit_state.loss_scale  # pylint: disable=protected-access
  assert scale is not None
  logs = model.fit(images.astype(np.uint8), batch_size=4, verbose=0).history
  assert np.isfinite(logs["loss"]).all() and logs["skipped_steps"] == [0.0]
  assert int(model.optimizer.iterations) == 2
  scale.scale.assign(1024.0)
  model.save(str(tmp_path / "model.keras"))
  loaded = keras.models.load_model(str(tmp_path / "model.keras"))
  restored = loaded._fit_state.loss_scale  # pylint: disable=protected-access
  assert float(restored.scale.numpy()) == 1024.0
  assert int(restored.good_steps.numpy()) == 2
