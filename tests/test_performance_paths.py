"""Correctness of the fast paths that bench/ measures (never their speed).

* bfloat16 and float16 coupling networks (`decoder.compute_dtype`), a
  training speed-up: the networks run in 16 bits on float32 master
  weights. A whole 16-bit model does not round-trip exactly: in a chain
  the inverse rebuilds each coupling's conditioning channels only to
  float32 accuracy, and a 1e-7 difference can flip a bfloat16 (2^-8
  relative) or float16 (2^-11) rounding of the network input. So the
  weights of a 16-bit-trained model decode in a float32 model, which must
  round-trip exactly at every batch size.
* LU 1x1 convolutions (`decoder.conv1x1="lu"`), the faster training
  parameterisation: exact round trips, and the same log-likelihood as the
  full matrix W = P L U it parameterises.
* The inference cache (W^-1, log|det W| held in variables), which decode
  and exports use: it must give the same images and losses as recomputing.
"""

import numpy as np
import pytest
import tensorflow as tf

import tfglv


def _images(config, n, seed=0):
  rng = np.random.RandomState(seed)
  return tf.constant(rng.randint(0, 256, (n, *config.model.image_shape)),
                     tf.uint8)


def _model(compute_dtype="float32", conv1x1="full", model="glvae"):
  config = tfglv.configs.override(
      tfglv.configs.get("tiny", model=model),
      {"decoder.compute_dtype": compute_dtype, "decoder.conv1x1": conv1x1})
  built = tfglv.build_model(config)
  built.initialize(_images(config, 16, seed=1))
  # Non-trivial couplings: the last convs' zero length g would make every
  # network output zero and hide dtype effects.
  rng = np.random.RandomState(3)
  for variable in built.trainable_variables:
    if "conv_out" in variable.path:
      variable.assign(0.05 * rng.standard_normal(variable.shape))
  return built, config


@pytest.fixture(scope="module", params=["bfloat16", "float16"])
def half_model(request):
  """A model whose coupling networks compute in a 16-bit float."""
  return _model(compute_dtype=request.param)


@pytest.fixture(scope="module")
def float32_copy(half_model):
  model, _ = half_model
  copy, _ = _model()
  copy.set_weights(model.get_weights())
  return copy


@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_half_precision_weights_decode_exactly_in_float32(
    half_model, float32_copy, batch_size):
  _, config = half_model
  images = _images(config, batch_size, seed=batch_size)
  z, _, v = float32_copy.encode(images)
  decoded = float32_copy.decode(tf.identity(z), tf.identity(v))
  np.testing.assert_array_equal(decoded.numpy(), images.numpy())


def test_half_precision_networks_compute_in_their_dtype(half_model):
  model, config = half_model
  step = model.decoder.level_steps[1][0][0]
  network = step.coupling_continuous_up.network
  assert network.compute_dtype == config.model.decoder.compute_dtype
  assert network.conv_hidden.kernel.dtype == "float32"  # master weights


def test_half_precision_losses_close_to_float32(half_model, float32_copy):
  model, config = half_model
  reference = float32_copy
  images = _images(config, 4)
  half = model.compute_losses(images, seed=5)["loss"].numpy()
  f32 = reference.compute_losses(images, seed=5)["loss"].numpy()
  assert half.dtype == np.float32
  # bfloat16 keeps 8 bits of mantissa, float16 11, in the networks only.
  np.testing.assert_allclose(half, f32, rtol=2e-2)
  assert not np.array_equal(half, f32)


def test_lu_round_trip_and_likelihood_match_full():
  model, config = _model(conv1x1="lu", model="glow")
  images = _images(config, 3)
  z, _, v = model.encode(images)
  np.testing.assert_array_equal(
      model.decode(tf.identity(z), tf.identity(v)).numpy(), images.numpy())
  # The same map with W = P L U held as a full matrix.
  full, _ = _model(conv1x1="full", model="glow")
  lu_layers, full_layers = model.conv1x1_layers, full.conv1x1_layers
  assert len(lu_layers) == len(full_layers) > 0
  for lu_layer, full_layer in zip(lu_layers, full_layers):
    full_layer.kernel.assign(lu_layer.weight_matrix(tf.float32))

  def other_weights(m):
    skip = {id(v) for l in m.conv1x1_layers for v in l.weights}
    return [v for v in m.weights if id(v) not in skip]

  pairs = list(zip(other_weights(model), other_weights(full)))
  assert len(pairs) == len(other_weights(full))
  for source, target in pairs:
    target.assign(source)
  np.testing.assert_allclose(
      full.compute_losses(images, seed=2)["loss"].numpy(),
      model.compute_losses(images, seed=2)["loss"].numpy(), rtol=1e-5)


@pytest.mark.parametrize("conv1x1", ["full", "lu"])
def test_inference_cache_matches_recomputation(conv1x1):
  model, config = _model(conv1x1=conv1x1)
  images = _images(config, 4)
  z, _, v = model.encode(images)
  loss = model.compute_losses(images, seed=1)["loss"].numpy()
  decoded = model.decode(z, v).numpy()
  model.set_inference_cache(True)
  try:
    np.testing.assert_array_equal(model.decode(z, v).numpy(), decoded)
    np.testing.assert_array_equal(decoded, images.numpy())
    np.testing.assert_allclose(
        model.compute_losses(images, seed=1)["loss"].numpy(), loss,
        rtol=1e-6)
  finally:
    model.set_inference_cache(False)


def test_split_channels_matches_slices_in_values_and_gradients():
  # The flows split channels with one tf.split (its gradient is a concat)
  # instead of two slices (two zero-padded StridedSliceGrads).
  x = tf.random.stateless_normal([2, 3, 3, 7], [0, 1])
  weights = tf.random.stateless_normal([2, 3, 3, 7], [0, 2])
  for first in (0, 3, 7):
    with tf.GradientTape(persistent=True) as tape:
      tape.watch(x)
      a, b = tfglv.flows.base.split_channels(x, first)
      loss = tf.reduce_sum(tf.concat([a * 2.0, b * 3.0], -1) * weights)
      sliced = tf.reduce_sum(tf.concat(
          [x[..., :first] * 2.0, x[..., first:] * 3.0], -1) * weights)
    np.testing.assert_array_equal(a.numpy(), x[..., :first].numpy())
    np.testing.assert_array_equal(b.numpy(), x[..., first:].numpy())
    np.testing.assert_array_equal(tape.gradient(loss, x).numpy(),
                                  tape.gradient(sliced, x).numpy())
  with pytest.raises(ValueError, match=r"first must be in \[0, 7\]; got 8"):
    tfglv.flows.base.split_channels(x, 8)


@pytest.mark.parametrize("optimizer", ["tfglv", "keras"])
def test_benchmark_steps_train_every_variable_of_both_models(optimizer):
  """bench/'s trainer step (tfglv's TrainStep) on tfglv and the tfp peer."""
  from bench import harness  # pylint: disable=g-import-not-at-top
  images = harness.load_images(4)
  config = tfglv.configs.override(
      tfglv.configs.get("tiny"), {"image_size": "32", "encoder.channels": "[8, 8, 8]"})
  ours = tfglv.build_model(config)
  ours.initialize(images)
  peer = harness.TFPGlowModel(num_steps_per_block=1, hidden=8)
  assert harness.num_params(peer.trainable_variables) == \
      harness.tfp_glow_params(1, 8)
  for model in (ours, peer):
    adamw = harness.make_optimizer(optimizer)
    step = harness.make_train_step(model, adamw, batch_size=4, kind="trainer")
    before = [v.numpy().copy() for v in model.trainable_variables]
    # Two steps: the zero-initialised last layers of the coupling networks
    # pass no gradient to the layers before them until they have moved.
    for i in range(2):
      loss = float(step(images, tf.constant([i, 0], tf.int32)))
      # Finite and of a sane order (tfglv starts near 7 bits/dim, tfp's
      # Glow near 26); a peer whose ActNorm first saw zeros starts near 1e34
      # with infinite gradients, so the trainer skips its every step.
      assert 0 < loss < 100, loss
    assert int(adamw.iterations.numpy()) == 2  # Neither step was skipped.
    unchanged = [v.path if hasattr(v, "path") else v.name
                 for v, b in zip(model.trainable_variables, before)
                 if np.array_equal(np.asarray(v.numpy()), b)]
    assert not unchanged, unchanged
