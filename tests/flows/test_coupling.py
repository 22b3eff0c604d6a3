"""Conditional couplings: split patterns, scale bound, additive variant."""

import numpy as np
import pytest
import tensorflow as tf

from tfglv import flows
import flow_checks


def _coupling(channels, dtype="float64", **kwargs):
  with flow_checks.dtype_policy(dtype):
    layer = flows.CouplingLayer(channels, hidden_channels=6, **kwargs)
  flow_checks.perturb(layer.trainable_variables, stddev=0.3)
  return layer


@pytest.mark.parametrize("split", ["continuous", "alternate"])
@pytest.mark.parametrize("order", ["up", "down"])
@pytest.mark.parametrize("transform", ["affine", "additive"])
def test_image_coupling_bijector(split, order, transform):
  layer = _coupling(4, split=split, order=order, transform=transform,
                    condition_dim=3)
  x = tf.random.stateless_normal([2, 3, 3, 4], [0, 1], dtype=tf.float64)
  z = tf.random.stateless_normal([2, 3], [0, 2], dtype=tf.float64)
  flow_checks.check_bijector(layer.bijector, x, event_ndims=3, z=z)


@pytest.mark.parametrize("split", ["continuous", "alternate"])
@pytest.mark.parametrize("order", ["up", "down"])
def test_vector_coupling_bijector(split, order):
  layer = _coupling(6, split=split, order=order, event_rank=1)
  x = tf.random.stateless_normal([3, 6], [1, 1], dtype=tf.float64)
  flow_checks.check_bijector(layer.bijector, x, event_ndims=1)


# Which channels each pattern transforms (the rest condition them).
@pytest.mark.parametrize("channels,split,order,factor,transformed", [
    (4, "continuous", "up", 2, [2, 3]),
    (4, "continuous", "down", 2, [0, 1]),
    (4, "alternate", "up", 2, [1, 3]),
    (4, "alternate", "down", 2, [0, 2]),
    (5, "continuous", "up", 2, [3, 4]),       # ceil(C/2) condition
    (5, "continuous", "down", 2, [0, 1]),     # last ceil(C/2) condition
    (5, "alternate", "up", 2, [3, 4]),        # odd C: continuous fallback
    (5, "alternate", "down", 2, [0, 1]),
    (12, "continuous", "up", 4, [9, 10, 11]),  # prior block: C/M leave
])
def test_split_patterns(channels, split, order, factor, transformed):
  layer = _coupling(channels, dtype="float32", split=split, order=order,
                    factor=factor)
  x = tf.random.stateless_normal([2, 3, 3, channels], [5, 5])
  y = layer.bijector.forward(x)
  changed = np.where(np.abs(y.numpy() - x.numpy()).max(axis=(0, 1, 2)) > 0)[0]
  assert changed.tolist() == transformed
  # Conditioning channels really drive the transformed ones.
  x2 = tf.tensor_scatter_nd_add(
      x, [[0, 1, 1, c] for c in range(channels) if c not in transformed],
      tf.ones([channels - len(transformed)]))
  y2 = layer.bijector.forward(x2)
  assert np.abs((y2 - y).numpy()[..., transformed]).max() > 0


@pytest.mark.parametrize("split,order,transformed", [
    # (row, column) within each 2x2 block of the single channel.
    ("continuous", "up", [(1, 0), (1, 1)]),    # lower row from the upper
    ("continuous", "down", [(0, 0), (0, 1)]),
    ("alternate", "up", [(0, 1), (1, 1)]),     # right column from the left
    ("alternate", "down", [(0, 0), (1, 0)]),
])
def test_single_channel_images_split_sub_pixels(split, order, transformed):
  layer = _coupling(1, dtype="float32", split=split, order=order)
  x = tf.random.stateless_normal([2, 4, 6, 1], [5, 6])
  y = layer.bijector.forward(x)
  assert y.shape == x.shape
  changed = np.abs(y.numpy() - x.numpy())[..., 0] > 0
  for row in range(2):
    for column in range(2):
      block = changed[:, row::2, column::2]
      assert block.all() if (row, column) in transformed else not block.any()
  np.testing.assert_allclose(layer.bijector.inverse(tf.identity(y)), x,
                             atol=1e-5)


@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_scale_is_bounded_by_alpha(alpha):
  layer = _coupling(2, dtype="float32", alpha=alpha, event_rank=1)
  x = tf.random.stateless_normal([256, 2], [2, 2]) * 10
  weights = [v.numpy() for v in layer.trainable_variables]
  for gain in (1.0, 300.0):  # moderate, then saturating network outputs
    for v, w in zip(layer.trainable_variables, weights):
      v.assign(w * gain)
    ldj = layer.bijector.forward_log_det_jacobian(
        tf.identity(x), event_ndims=1).numpy()
    # One transformed channel: ldj = log(scale), scale in [1-alpha, 1+alpha].
    assert np.all(ldj <= np.log(1 + alpha) + 1e-6)
    if alpha < 1:
      assert np.all(ldj >= np.log(1 - alpha) - 1e-6)
    if gain == 1.0:
      assert ldj.max() - ldj.min() > 1e-3
  # Saturated network outputs reach the bounds: scale -> 1 -/+ alpha.
  last = layer.network.dense_out
  for sign in (-1.0, 1.0):
    last.length.assign(tf.zeros_like(last.length))  # w = 0
    last.bias.assign([0.0, sign * 60.0])  # [shift, u]
    # A fresh tensor each call: TFP caches log-dets by input identity.
    ldj = layer.bijector.forward_log_det_jacobian(
        tf.identity(x), event_ndims=1).numpy()
    # alpha = 1 (the authors' default) lets the scale reach 0 exactly.
    with np.errstate(divide="ignore"):
      bound = np.log(np.float32(1 + sign * alpha))
    np.testing.assert_allclose(ldj, bound, rtol=1e-5)


@pytest.mark.parametrize("event_rank", [1, 3])
def test_transform_picks_an_honestly_named_bijector(event_rank):
  shape = (3, 4) if event_rank == 1 else (2, 3, 3, 4)
  x = tf.random.stateless_normal(shape, [4, 1], dtype=tf.float64)
  for transform, cls in (("affine", flows.AffineCoupling),
                         ("additive", flows.AdditiveCoupling)):
    layer = _coupling(4, transform=transform, event_rank=event_rank)
    assert type(layer.bijector) is cls
    assert type(layer.make_bijector(cached=True)) is cls
    # The additive network outputs the shift only; the affine one [shift, u].
    params = layer.network(layer.split_channels(x)[0])
    assert params.shape[-1] == 2 * (1 if transform == "additive" else 2)
    y, ldj = layer.bijector.forward_and_log_det(x)
    if transform == "additive":
      np.testing.assert_array_equal(ldj.numpy(), 0.0)
      conditioning, transformed = layer.split_channels(x)
      np.testing.assert_array_equal(
          layer.split_channels(y)[1].numpy(), (transformed + params).numpy())
      np.testing.assert_array_equal(layer.split_channels(y)[0].numpy(),
                                    conditioning.numpy())


def test_coupling_starts_as_identity():
  with flow_checks.dtype_policy("float32"):
    layer = flows.CouplingLayer(4, hidden_channels=8, condition_dim=2)
  x = tf.random.stateless_normal([2, 3, 3, 4], [0, 1])
  z = tf.ones([2, 2])
  y, ldj = layer.bijector.forward_and_log_det(x, z=z)
  np.testing.assert_array_equal(y.numpy(), x.numpy())
  np.testing.assert_array_equal(ldj.numpy(), 0.0)


@pytest.mark.parametrize("kwargs,message", [
    (dict(alpha=0.0), "alpha must be in"),
    (dict(alpha=1.5), "alpha must be in"),
    (dict(split="diagonal"), "allowed: continuous, alternate"),
    (dict(order="left"), "allowed: up, down"),
    (dict(transform="spline"), "allowed: affine, additive"),
])
def test_bad_arguments(kwargs, message):
  with pytest.raises(ValueError, match=message):
    flows.CouplingLayer(4, hidden_channels=4, **kwargs)


@pytest.mark.parametrize("net_dtype", ["mixed_bfloat16", "mixed_float16"])
def test_half_precision_network_inverts_exactly_across_batch_sizes(
    net_dtype):
  layer = flows.CouplingLayer(6, hidden_channels=16, condition_dim=4,
                              net_dtype=net_dtype)
  flow_checks.perturb(layer.trainable_variables, stddev=0.05)
  with flow_checks.dtype_policy("float32"):
    reference = flows.CouplingLayer(6, hidden_channels=16, condition_dim=4)
  for target, source in zip(reference.weights, layer.weights):
    target.assign(source)
  for batch in (1, 3, 16):
    x = tf.random.stateless_normal([batch, 4, 4, 6], [batch, 0])
    z = tf.random.stateless_normal([batch, 4], [batch, 1])
    y, ldj = layer.bijector.forward_and_log_det(x, z=z)
    assert y.dtype == tf.float32 and ldj.dtype == tf.float32
    x_back, ildj = layer.bijector.inverse_and_log_det(tf.identity(y), z=z)
    # Exact up to float32 rounding of the affine update itself.
    np.testing.assert_allclose(x_back.numpy(), x.numpy(), atol=2e-6)
    np.testing.assert_allclose(ildj.numpy(), -ldj.numpy(), atol=1e-5)
    assert np.abs(y.numpy() - x.numpy()).max() > 1e-3
    # The network really ran in 16 bits: it differs from float32.
    y32 = reference.bijector.forward(tf.identity(x), z=z)
    assert 0 < np.abs(y32.numpy() - y.numpy()).max() < 0.05
