"""Variational dequantization (tfglv.dequantization): q(u|x) is a density
on the unit cube, its log-det is the Jacobian's, and its log q(u|x) enters
the bound."""

import math

import numpy as np
import pytest
import tensorflow as tf

import flow_checks
import tfglv
import train_testlib
from tfglv import dequantization
from tfglv import prior as prior_lib
from tfglv import quantization
from tfglv import training
from tfglv.export_lib import exporter
from tfglv.export_lib import signatures
from tfglv.training import optimizer as optimizer_lib
from tfglv.training import steps


def _dequantizer(image_shape=(4, 4, 1), stddev=0.3, num_steps=2,
                 hidden_channels=3):
  """A float64 dequantizer moved off its identity init."""
  with flow_checks.dtype_policy("float64"):
    layer = dequantization.VariationalDequantizer(
        image_shape, num_steps=num_steps, hidden_channels=hidden_channels)
  if stddev:
    flow_checks.perturb(layer.trainable_variables, stddev=stddev)
  return layer


def _centres(count, image_shape, seed=0):
  """Bin centres of random 8-bit images, float64, in [-1, 1)."""
  bins = np.random.default_rng(seed).integers(0, 256, (count, *image_shape))
  return quantization.to_flow_range(tf.constant(bins, tf.float64), 0.5, 8)


def _noise(layer, x, seed):
  """The eps that `layer.sample(x, seed)` draws."""
  shape = tf.concat([tf.shape(x)[:1], tf.shape(x)[1:3] // 2,
                     [layer.noise_channels]], 0)
  return tf.random.stateless_normal(shape, seed, dtype=x.dtype)


def test_flow_checks_of_the_noise_flow():
  layer = _dequantizer()
  x = _centres(2, (4, 4, 1))
  y = tf.random.stateless_normal([2, 4, 4, 1], [1, 2], dtype=tf.float64)
  flow_checks.check_bijector(layer.make_bijector(), y, event_ndims=3,
                             z=layer.features(x))


@pytest.mark.parametrize("image_shape", [(4, 4, 1), (2, 2, 3)])
def test_log_q_against_the_jacobian_of_eps_to_u(image_shape):
  # log q(u|x) = log N(eps) - log|det du/deps|, the sigmoid included.
  layer = _dequantizer(image_shape)
  x = _centres(3, image_shape)
  seed = tf.constant([5, 6])
  u, log_q = layer.sample(x, seed)
  eps = _noise(layer, x, seed)
  features = layer.features(x)
  with tf.GradientTape() as tape:
    tape.watch(eps)
    y = layer.make_bijector().inverse(eps, z=features)
    u_again = tf.sigmoid(y)
  np.testing.assert_allclose(u_again, u, rtol=1e-12)
  size = int(np.prod(image_shape))
  jacobian = tf.reshape(tape.batch_jacobian(u_again, eps), [3, size, size])
  _, log_abs_det = tf.linalg.slogdet(jacobian)
  np.testing.assert_allclose(
      log_q, prior_lib.standard_normal_log_prob(eps) - log_abs_det,
      rtol=1e-9, atol=1e-9)
  # The density of a given u, by the forward (data -> noise) direction.
  np.testing.assert_allclose(layer.log_prob(tf.identity(u), x), log_q,
                             rtol=1e-7, atol=1e-7)


def test_u_is_strictly_inside_the_unit_cube():
  layer = dequantization.VariationalDequantizer((16, 16, 3))
  flow_checks.perturb(layer.trainable_variables, stddev=0.05)
  x = tf.cast(_centres(8, (16, 16, 3)), tf.float32)
  u, log_q = layer.sample(x, tf.constant([1, 1]))
  assert u.shape == (8, 16, 16, 3) and log_q.shape == (8,)
  assert 0.0 < float(tf.reduce_min(u)) and float(tf.reduce_max(u)) < 1.0
  # Shift half of the values' logits to ~40, where float32 sigmoid is 1.
  bias = layer.coupling_0.network.conv_out.bias
  bias.assign(tf.concat([tf.fill([6], -40.0), tf.zeros([6])], 0))
  u, log_q = layer.sample(x, tf.constant([1, 1]))
  assert float(tf.reduce_max(u)) == np.float32(1.0 - 2.0 ** -24)
  assert 0.0 < float(tf.reduce_min(u))
  assert np.all(np.isfinite(log_q))


def test_at_initialisation_q_is_the_logit_normal_density():
  # Every coupling starts as the identity (g = 0): u = sigmoid(eps).
  layer = _dequantizer((4, 4, 2), stddev=0.0)
  x = _centres(2, (4, 4, 2))
  u, log_q = layer.sample(x, tf.constant([3, 4]))
  u = u.numpy()
  logit = np.log(u) - np.log1p(-u)
  expected = np.sum(-0.5 * logit ** 2 - 0.5 * math.log(2 * math.pi) -
                    np.log(u) - np.log1p(-u), axis=(1, 2, 3))
  np.testing.assert_allclose(log_q, expected, rtol=1e-9)


def test_q_integrates_to_one_over_the_unit_cube():
  # E_{u ~ U[0,1)^4}[q(u|x)] = 1 for a density on the cube (2x2x1 images).
  layer = _dequantizer((2, 2, 1), stddev=0.3)
  count = 200_000
  u = tf.random.stateless_uniform([count, 2, 2, 1], [7, 8], dtype=tf.float64)
  x = tf.tile(_centres(1, (2, 2, 1)), [count, 1, 1, 1])
  densities = tf.exp(layer.log_prob(u, x)).numpy()
  standard_error = densities.std() / math.sqrt(count)
  assert abs(densities.mean() - 1.0) < max(4 * standard_error, 1e-3), (
      densities.mean(), standard_error)
  # q is not uniform: the check above is not trivially met.
  assert densities.std() > 0.3


def _variational(variant="glvae", **overrides):
  config = tfglv.configs.get("tiny", model=variant,
                             model__dequantization="variational", **overrides)
  model = tfglv.build_model(config)
  images = np.random.default_rng(2).integers(
      0, 256, (6, *config.model.image_shape)).astype(np.uint8)
  model.initialize(images)
  flow_checks.perturb(model.trainable_variables, stddev=0.02)
  return model, tf.constant(images)


def test_log_q_enters_the_reported_bound():
  model, images = _variational("glow")
  seed = tf.constant([4, 9])
  losses = model.compute_losses(images, seed)
  # The same noise, by hand: -log p(x) + D log(n_bins / 2) + log q(u|x).
  dequant_seed, _ = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
  x_bins = quantization.bins(images, 8)
  u, log_q = model.dequantizer.sample(
      quantization.to_flow_range(x_bins, 0.5, 8), dequant_seed)
  v, log_det = model.decoder.bijector.forward_and_log_det(
      quantization.to_flow_range(x_bins, u, 8))
  nats = (-(prior_lib.standard_normal_log_prob(v) + log_det) +
          quantization.dequantization_log_det(model.num_dims, 8) + log_q)
  np.testing.assert_allclose(losses["nll"] * model.nats_per_bit_dim, nats,
                             rtol=1e-5)
  np.testing.assert_allclose(losses["loss"], losses["nll"])  # glow: kl = 0.
  assert float(tf.reduce_mean(log_q)) > 1.0  # Not the uniform bound.


def _logit_normal_mean_log_density():
  """E[log q(u)] of one value, u = sigmoid(eps), eps ~ N(0, 1): by
  quadrature, E[log N(eps) - log sigmoid'(eps)]."""
  eps = np.linspace(-12.0, 12.0, 200_001)
  normal = np.exp(-0.5 * eps ** 2) / math.sqrt(2 * math.pi)
  log_q = (np.log(normal) + np.logaddexp(0.0, eps) + np.logaddexp(0.0, -eps))
  return float(np.sum(normal * log_q) * (eps[1] - eps[0]))


def test_the_bound_pays_exactly_the_noise_density():
  # A 4x4x1 8-bit "glow" whose dequantizer is at its start (the logit-normal
  # q; the flow moved off its own). Across a bin of width 2/256 log p is
  # nearly flat, and both q and the uniform noise have mean 1/2, so
  # E_q[-log p(x + u)] = E_U[-log p(x + u)] and the bounds differ by
  # E_q[log q(u|x)] = 16 x 0.19 nats: the bound pays for its noise, no more,
  # no less (without log q the difference would be 0, with the wrong sign
  # negative). The uniform bound is then -log P(x_bins) itself, which the
  # variational one exceeds.
  config = tfglv.configs.get("tiny", model="glow", model__image_size=4,
                             model__channels=1,
                             model__dequantization="variational")
  model = tfglv.build_model(config)
  images = np.random.default_rng(3).integers(0, 256, (8, 4, 4, 1))
  model.initialize(images.astype(np.uint8))
  flow_checks.perturb(model.decoder.trainable_variables, stddev=0.02)
  draws = 4096
  tiled = tf.tile(tf.constant(images[:1], tf.uint8), [draws, 1, 1, 1])
  bound = model.compute_losses(tiled, [1, 1])["loss"] * model.nats_per_bit_dim
  x_bins = quantization.bins(tiled, 8)
  noise = tf.random.stateless_uniform(tf.shape(x_bins), [2, 2])
  v, log_det = model.decoder.bijector.forward_and_log_det(
      quantization.to_flow_range(x_bins, noise, 8))
  uniform = (quantization.dequantization_log_det(model.num_dims, 8) -
             prior_lib.standard_normal_log_prob(v) - log_det)
  gap = float(tf.reduce_mean(bound) - tf.reduce_mean(uniform))
  expected = model.num_dims * _logit_normal_mean_log_density()
  assert 2.5 < expected < 3.5  # ~0.19 nats a value.
  # Standard error of the mean of 4096 draws: ~0.05 nats.
  assert abs(gap - expected) < 0.2, (gap, expected)


@pytest.mark.parametrize("field,value,message", [
    ("model.dequantization", "learned", r"Unknown model.dequantization "
     r"'learned'; allowed: uniform, variational"),
    ("model.dequantizer.num_steps", "0",
     r"model.dequantizer.num_steps must be >= 1; got 0"),
    ("model.dequantizer.hidden_channels", "0",
     r"model.dequantizer.hidden_channels must be >= 1; got 0"),
])
def test_bad_settings_are_refused(field, value, message):
  with pytest.raises(ValueError, match=message):
    tfglv.configs.validate(tfglv.configs.override(tfglv.configs.get("tiny"),
                                                  {field: value}))


def test_config_and_layer_round_trips():
  config = tfglv.configs.get("tiny", model__dequantization="variational",
                             model__dequantizer__num_steps=2)
  again = tfglv.configs.from_json(tfglv.configs.to_json(config))
  assert again == config and again.model.dequantizer.num_steps == 2
  assert tfglv.configs.get("tiny").model.dequantization == "uniform"
  layer = _dequantizer()
  clone = flow_checks.check_config_round_trip(layer)
  assert clone.image_shape == (4, 4, 1) and len(clone.couplings) == 2
  x = _centres(1, (4, 4, 1))
  flow_checks.check_cached_matches(
      layer, lambda cached: layer.sample(x, tf.constant([1, 2]), cached),
      rtol=1e-9)


def test_encoding_and_serving_ignore_the_dequantizer():
  # encode, decode and the exported signatures read bin centres only.
  model, images = _variational()
  model.set_inference_cache(True)
  z, _, v = model.encode(images)
  np.testing.assert_array_equal(model.decode(z, v), images)
  functions = signatures.ServingFunctions(model)
  encoded = functions.encode(images)
  np.testing.assert_array_equal(encoded["v"], v)
  np.testing.assert_array_equal(
      functions.decode(encoded["z"], encoded["v"])["images"], images)


def test_two_trainer_steps_train_the_dequantizer():
  # The trainer's compiled step (tfglv.training.steps) on the real model.
  config = tfglv.configs.get("tiny", model__dequantization="variational",
                             train__warmup_steps=0)
  strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
  images = np.random.default_rng(4).integers(0, 256, (2, 8, 16, 16, 3))
  with strategy.scope():
    model = tfglv.build_model(config)
    model.initialize(images[0].astype(np.uint8))
    flow_checks.perturb(model.trainable_variables, stddev=0.02)
    optimizer = optimizer_lib.build_optimizer(
        config.train, nats_per_loss_unit=model.nats_per_bit_dim)
    optimizer.build(model.trainable_variables)
    step = tf.Variable(0, dtype=tf.int64, trainable=False)
    skipped = tf.Variable(0, dtype=tf.int64, trainable=False)
  train_step = steps.TrainStep(model, optimizer, strategy, config.train, 8,
                               step, skipped)
  dataset = tf.data.Dataset.from_tensor_slices(
      {"image": images.reshape(-1, 16, 16, 3).astype(np.uint8)}).batch(8)
  iterator = iter(strategy.experimental_distribute_dataset(dataset))
  before = [v.numpy().copy() for v in model.dequantizer.trainable_variables]
  for _ in range(2):
    metrics = {k: float(v) for k, v in train_step.train_step(iterator).items()}
    assert metrics["finite"] == 1.0 and math.isfinite(metrics["loss"])
    assert 5.0 < metrics["loss"] < 12.0  # bits/dim of random 8-bit images.
    assert math.isclose(metrics["loss"], metrics["nll"] + metrics["kl"],
                        rel_tol=1e-6)
  assert int(skipped.numpy()) == 0
  assert not any(np.array_equal(v.numpy(), b) for v, b in zip(
      model.dequantizer.trainable_variables, before))


@pytest.mark.slow
@pytest.mark.filterwarnings(train_testlib.TF_DATA_OPTIONS_WARNING)
def test_a_variational_run_trains_and_exports(tmp_path):
  config = train_testlib.tiny(train_testlib.FAST_QUIET, train__num_steps=2,
                              model__dequantization="variational")
  workdir = str(tmp_path / "run")
  summary = training.train_and_evaluate(config, workdir)
  for record in summary["train_history"] + summary["evaluations"]:
    assert math.isfinite(record["bpd"])
  result = exporter.export_from_workdir(workdir, str(tmp_path / "models"),
                                        tflite_variants=["float32"])
  assert result.tflite_report["float32"]["decode"]["max_pixel_error"] <= 1
  loaded = tf.saved_model.load(result.saved_model_dir)
  images = np.random.default_rng(5).integers(0, 256, (4, 16, 16, 3)).astype(
      np.uint8)
  encoded = loaded.signatures["encode"](images=tf.constant(images))
  decoded = loaded.signatures["decode"](z=encoded["z"], v=encoded["v"])
  np.testing.assert_array_equal(decoded["images"], images)
