"""Weight-normalised layers, and why the couplings need them (issue 17)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfglv
from tfglv import _compat
from tfglv.flows import coupling
from tfglv.layers import weight_norm


def _random(shape, seed=0):
  return tf.constant(np.random.RandomState(seed).normal(size=shape),
                     tf.float32)


@pytest.mark.parametrize("layer,inputs", [
    (lambda: weight_norm.WeightNormDense(5), (4, 7)),
    (lambda: weight_norm.WeightNormConv2D(5, 3), (2, 6, 6, 7)),
])
def test_zero_start_outputs_zero_and_only_length_gets_a_gradient(layer, inputs):
  layer = layer()
  x = _random(inputs)
  with tf.GradientTape() as tape:
    y = layer(x)
    loss = tf.reduce_sum(y * _random(y.shape, seed=1))
  assert np.array_equal(y.numpy(), np.zeros(y.shape))
  grads = dict(zip([v.name for v in layer.trainable_variables],
                   tape.gradient(loss, layer.trainable_variables)))
  # w = g v / |v| with g = 0: v cannot move until g has.
  assert np.array_equal(grads["direction"].numpy(), 0 * grads["direction"])
  assert np.abs(grads["length"].numpy()).min() > 0
  assert np.abs(grads["bias"].numpy()).min() > 0


def test_kernel_is_length_times_unit_direction():
  layer = weight_norm.WeightNormConv2D(4, 3)
  layer.build((None, None, None, 3))
  layer.length.assign([0.5, -2.0, 1.0, 3.0])
  layer.bias.assign([0.1, 0.2, 0.3, 0.4])
  v = layer.direction.numpy()
  expected = v / np.sqrt((v ** 2).sum(axis=(0, 1, 2))) * [0.5, -2.0, 1.0, 3.0]
  np.testing.assert_allclose(layer.kernel().numpy(), expected, rtol=1e-6)
  reference = keras.layers.Conv2D(4, 3, padding="same")
  reference.build((None, None, None, 3))
  reference.set_weights([expected, np.array([0.1, 0.2, 0.3, 0.4])])
  x = _random((2, 5, 5, 3))
  np.testing.assert_allclose(layer(x).numpy(), reference(x).numpy(),
                             atol=1e-5)


def test_data_dependent_init_sets_output_mean_and_std():
  layer = weight_norm.WeightNormDense(6, init_scale=0.01)
  x = _random((64, 10)) * 3.0 + 1.0
  # Before the init, q(z|x) is exactly N(0, I): the outputs are zero.
  assert np.array_equal(layer(x).numpy(), np.zeros((64, 6)))
  assert int(layer.initialized.numpy()) == 0
  layer.initialize_from(x)
  y = layer(x).numpy()
  assert int(layer.initialized.numpy()) == 1
  np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-6)
  np.testing.assert_allclose(y.std(axis=0, ddof=1), 0.01, rtol=1e-3)


def test_zero_start_layers_refuse_a_data_init():
  layer = weight_norm.WeightNormDense(3)
  layer(_random((2, 4)))
  with pytest.raises(ValueError, match="data-dependent"):
    layer.initialize_from(_random((2, 4)))


@pytest.mark.parametrize("make,message", [
    (lambda: weight_norm.WeightNormDense(0), "units must be >= 1"),
    (lambda: weight_norm.WeightNormDense(3, init_scale=-1.0),
     "init_scale must be >= 0"),
    (lambda: weight_norm.WeightNormConv2D(3, 2), "odd integer"),
])
def test_bad_arguments(make, message):
  with pytest.raises(ValueError, match=message):
    make()


@pytest.mark.parametrize("cls,kwargs,inputs", [
    (weight_norm.WeightNormDense, dict(units=3, init_scale=0.5), (2, 4)),
    (weight_norm.WeightNormConv2D, dict(filters=3, kernel_size=1), (1, 3, 3, 2)),
])
def test_config_round_trip_and_serialization(cls, kwargs, inputs):
  layer = cls(**kwargs)
  x = _random(inputs)
  layer(x)
  layer.length.assign(layer.length + 0.25)
  config = layer.get_config()
  clone = cls.from_config(config)
  clone(x)
  clone.set_weights(layer.get_weights())
  assert clone.get_config() == config
  np.testing.assert_array_equal(clone(x).numpy(), layer(x).numpy())
  restored = keras.saving.deserialize_keras_object(
      keras.saving.serialize_keras_object(layer))
  assert type(restored) is cls


def _output_change_after_one_adam_step(hidden):
  """max |change| of a fresh coupling network's output after one Adam step."""
  layer = coupling.CouplingLayer(8, hidden, condition_dim=4)
  network = layer.network
  x = _random((4, 6, 6, 4))
  z = _random((4, 4), seed=2)
  target = _random((4, 6, 6, 8), seed=3)
  before = network(x, z).numpy()
  optimizer = keras.optimizers.Adam(1e-3)
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(tf.square(network(x, z) - target))
  grads = tape.gradient(loss, network.trainable_variables)
  optimizer.apply_gradients(zip(grads, network.trainable_variables))
  return np.abs(network(x, z).numpy() - before).max()


def test_first_update_of_a_coupling_does_not_grow_with_its_width():
  # The cause of the full-size divergence: a plain zero-initialised output
  # conv has 9 * hidden fan-in weights that Adam each moves by ~lr, so its
  # output jumped ~16x more at hidden 512 than at 32. Weight normalisation
  # leaves only g to set the output's size.
  narrow = _output_change_after_one_adam_step(32)
  wide = _output_change_after_one_adam_step(512)
  assert 0 < wide < 2.0 * narrow, (narrow, wide)
  assert wide < 5e-3  # about one learning rate per unit, not thousands.


def test_model_initialize_sets_the_encoder_head_once():
  config = tfglv.configs.get("tiny")
  model = tfglv.build_model(config)
  images = tf.constant(np.random.RandomState(0).randint(
      0, 256, (32, *config.model.image_shape)), tf.uint8)
  assert not model.is_initialized
  assert model.initialize(images)
  mean, log_variance = model.posterior(images)
  params = np.concatenate([mean.numpy(), log_variance.numpy()], axis=1)
  np.testing.assert_allclose(params.std(axis=0, ddof=1),
                             config.model.encoder.final_init_stddev, rtol=1e-2)
  head = [v.numpy().copy() for v in model.encoder.head.weights]
  assert not model.initialize(images[::-1])
  for before, after in zip(head, model.encoder.head.weights):
    np.testing.assert_array_equal(before, after.numpy())


def test_a_tfglv_0_1_checkpoint_mismatch_is_explained():
  from tfglv.rundir import checkpoints  # pylint: disable=g-import-not-at-top
  # The first line TF gives for a 0.1 checkpoint restored into 0.2.
  old = AssertionError(
      "Found 155 Python objects that were not bound to checkpointed values, "
      "likely due to changes in the Python program. Showing 10 of 155 "
      "unmatched objects: [<Variable path=conv_out/direction, shape=(3, 3, "
      "512, 18), dtype=float32, value=[...]>")
  assert "checkpoint of tfglv 0.1" in checkpoints.layout_hint(old)
  other = AssertionError("Unresolved object in checkpoint: (root).step")
  assert checkpoints.layout_hint(other) == ""


def test_inference_cache_stores_the_kernel_and_is_read():
  layer = weight_norm.WeightNormConv2D(4, 3)
  x = _random((2, 5, 5, 3))
  layer(x)
  layer.length.assign([0.5, -1.0, 2.0, 0.25])
  live = layer(x).numpy()
  layer.refresh_cache()
  np.testing.assert_array_equal(layer.cached_kernel.numpy(),
                                layer.kernel().numpy())
  np.testing.assert_array_equal(layer(x, cached=True).numpy(), live)
  layer.length.assign([1.0, 1.0, 1.0, 1.0])  # Not seen until a refresh.
  np.testing.assert_array_equal(layer(x, cached=True).numpy(), live)
  assert not np.array_equal(layer(x).numpy(), live)


def test_model_inference_cache_covers_every_weight_normalised_layer(
    monkeypatch):
  model = tfglv.build_model(tfglv.configs.get("tiny"))
  # Every call runs its Python (not a compiled graph traced earlier), so the
  # spy sees each layer's `cached` flag on every call.
  model.run_eagerly = True
  layers = [l for l in _compat.sublayers(model)
            if isinstance(l, weight_norm.WeightNormLayer)]
  config = model.config
  # 4 per Glow step, 1 per prior block, 4 per prior step, and the head.
  steps = sum(sum(l) if isinstance(l, list) else l
              for l in config.decoder.num_steps)
  blocks = sum(len(l) for l in config.decoder.num_steps
               if isinstance(l, list))
  assert len(layers) == 4 * steps + blocks + 4 * config.prior.num_steps + 1
  calls = []
  call = weight_norm.WeightNormLayer.call

  def spy(self, inputs, cached=False):
    calls.append((id(self), cached))
    return call(self, inputs, cached=cached)

  monkeypatch.setattr(weight_norm.WeightNormLayer, "call", spy)
  images = tf.zeros([1, *config.image_shape], tf.uint8)

  def cached_flags():
    del calls[:]
    z, _, v = model.encode(images)  # the encoder head and the decoder
    model.decode(z, v)
    model.sample(1)  # the prior
    assert {i for i, _ in calls} == {id(l) for l in layers}
    return {c for _, c in calls}

  assert cached_flags() == {False}
  model.set_inference_cache(True)
  for layer in layers:  # refreshed
    np.testing.assert_array_equal(layer.cached_kernel.numpy(),
                                  layer.kernel().numpy())
  assert cached_flags() == {True}
  with pytest.raises(ValueError, match="set_inference_cache\\(False\\)"):
    model.compute_losses(images, 0, training=True)
  model.set_inference_cache(False)
  assert cached_flags() == {False}


@pytest.mark.parametrize("size,in_dim,out_dim,side", [
    (3, 16, 6, 5), (3, 7, 2, 1), (1, 4, 3, 3), (5, 6, 4, 4)])
def test_conv_kernel_gradient_as_a_matmul_is_tfs(size, in_dim, out_dim, side):
  x = _random((2, side, side + 1, in_dim))
  kernel = _random((size, size, in_dim, out_dim), seed=1)
  weights = _random((2, side, side + 1, out_dim), seed=2)
  grads = []
  for conv in (weight_norm.conv2d_same,
               lambda a, k: tf.nn.conv2d(a, k, 1, "SAME")):
    # Traced with a free batch, as in a training step.
    @tf.function(input_signature=[tf.TensorSpec([None, side, side + 1,
                                                 in_dim])])
    def run(inputs, conv=conv):
      with tf.GradientTape() as tape:
        tape.watch([inputs, kernel])
        y = conv(inputs, kernel)
        loss = tf.reduce_sum(y * weights)
      return [y] + tape.gradient(loss, [inputs, kernel])
    grads.append([t.numpy() for t in run(x)])
  ours, tfs = grads
  np.testing.assert_array_equal(ours[0], tfs[0])  # the same forward op
  np.testing.assert_array_equal(ours[1], tfs[1])  # and input gradient
  np.testing.assert_allclose(ours[2], tfs[2], rtol=1e-5, atol=1e-5)
  assert np.abs(tfs[2]).max() > 0.1
