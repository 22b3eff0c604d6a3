"""Variational dequantization (Flow++, Ho et al. 2019): a learned q(u|x).

Uniform dequantization adds u ~ U[0, 1)^D to the bins x_bins of an image
(`tfglv.quantization`). Variational dequantization draws u from a small
conditional flow q(u|x) instead, and the bound pays its log-density
(`tfglv.objective`, in training and evaluation alike):

    -log P(x_bins) <= E_q(u|x)[-log p(x_bins + u) + log q(u|x)]

(plus the D log(n_bins / 2) of the map to the flow's range). It holds for
any density q on the unit cube (Jensen) and is tighter the closer q(u|x) is
to p's shape inside the bin. The authors' code has it as an option (its
`*-var` configs); the paper trains with uniform noise.

q(u|x) for an image [H, W, C] whose bin centres in the flow's range are
x_c (so it sees no noise):

    features = F(squeeze(x_c))       Conv3x3(h) - ELU - Conv3x3(h) - ELU,
                                     [H/2, W/2, h]
    eps      ~ N(0, I)               [H/2, W/2, 4C]
    y        = squeeze^-1(g^-1(eps; features))             [H, W, C]
    u        = sigmoid(y)            in (0, 1)^D
    log q(u|x) = log N(eps; 0, I) - log|det dy/deps| - sum log sigmoid'(y)

`squeeze` is the flows' 2x2 space-to-depth (`tfglv.flows.Squeeze`); g is
a chain of `num_steps` affine couplings (`tfglv.flows.AffineCoupling`'s
math) over the 4C squeezed channels, alternately the first half (the upper
row of each 2x2 block) conditioning the second and back. Each coupling
network is the decoder's (`ConvCouplingNetwork`) reading its half
concatenated with the features; its last conv is weight-normalised with
g = 0, so at initialisation g is the identity and q(u|x) is the
logit-normal density N(logit u; 0, I) / prod u (1 - u).

Like every tfglv flow, the layer's bijector maps data to noise:
`forward(logit(u), z=features) = eps` (the coupling's condition keyword
`z` carries the feature map here). Sampling runs its inverse.

Encoding, decoding, sampling and the exports never use it: they read the
bin centres (u = 1/2).
"""

from typing import Optional, Sequence

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfglv import prior as prior_lib
from tfglv import quantization
from tfglv.flows import base
from tfglv.flows import coupling
from tfglv.flows import squeeze
from tfglv.flows import tracking
from tfglv.layers import weight_norm


def _sigmoid_log_det(y):
  """log|det du/dy| of u = sigmoid(y) over each image: [N]."""
  return tfp.bijectors.Sigmoid().forward_log_det_jacobian(y, event_ndims=3)


@keras.saving.register_keras_serializable(package="tfglv")
class FeatureCouplingNetwork(coupling.ConvCouplingNetwork):
  """`ConvCouplingNetwork` on [its half of the noise, the image features]:
  `in_channels` counts both; the condition is the feature map."""

  def call(self, inputs, condition=None, cached=False):
    if condition is None:
      raise ValueError("The dequantizer's couplings read the image's "
                       "features: pass them as the condition.")
    features = tf.cast(condition, inputs.dtype)
    return super().call(tf.concat([inputs, features], axis=-1),
                        cached=cached)


@keras.saving.register_keras_serializable(package="tfglv")
class NoiseCouplingLayer(base.FlowLayer):
  """An affine coupling of the squeezed noise, conditioned on the features.

  Holds what `coupling.AffineCoupling` reads from its layer (the split,
  the network, `num_transformed`, `alpha`); "up": the first half of the
  channels conditions the second, "down": the reverse.

  Args:
    num_channels: even channel count of the noise (4C).
    feature_channels: channels of the feature map.
    hidden_channels: width of the coupling network.
    order: "up" or "down".
    alpha: bound of the scale, alpha * tanh(. / 2) + 1, in (0, 1].
  """

  event_rank = 3

  def __init__(self, num_channels: int, feature_channels: int,
               hidden_channels: int, order: str = "up", alpha: float = 1.0,
               **kwargs):
    super().__init__(**kwargs)
    if num_channels < 2 or num_channels % 2:
      raise ValueError(f"num_channels must be even and >= 2; got "
                       f"{num_channels}.")
    if order not in coupling.ORDERS:
      raise ValueError(f"Unknown order {order!r}; allowed: "
                       f"{', '.join(coupling.ORDERS)}.")
    if not 0.0 < alpha <= 1.0:
      raise ValueError(f"alpha must be in (0, 1]; got {alpha}.")
    self.keep_arguments(num_channels=num_channels,
                        feature_channels=feature_channels,
                        hidden_channels=hidden_channels, order=order,
                        alpha=alpha)
    # Non-zero: the bijector is conditional (it takes the features as `z`).
    self.condition_dim = feature_channels
    self.num_transformed = num_channels // 2
    self.network = FeatureCouplingNetwork(
        self.num_transformed + feature_channels, 2 * self.num_transformed,
        hidden_channels, dtype=self.dtype_policy, name="network")
    self.built = True

  def split_channels(self, x):
    """(conditioning, transformed) halves of x."""
    first, second = base.split_channels(x, self.num_transformed)
    return (first, second) if self.order == "up" else (second, first)

  def merge_channels(self, conditioning, transformed):
    """Inverse of `split_channels`."""
    halves = ([conditioning, transformed] if self.order == "up" else
              [transformed, conditioning])
    return tf.concat(halves, axis=-1)

  def make_bijector(self, *, initializing=False, cached=False):
    del initializing  # No data-dependent parameters.
    return coupling.AffineCoupling(self, cached=cached, name=self.name)


@keras.saving.register_keras_serializable(package="tfglv")
class VariationalDequantizer(base.FlowLayer):
  """q(u|x): see the module docstring.

  Args:
    image_shape: (H, W, C), H and W even.
    num_steps: affine couplings of the noise (>= 1).
    hidden_channels: width of the feature network and the couplings.

  Example:
    dequantizer = VariationalDequantizer((16, 16, 3))
    u, log_q = dequantizer.sample(x_centres, seed=[1, 2])  # [N,16,16,3], [N]
  """

  event_rank = 3

  def __init__(self, image_shape: Sequence[int], num_steps: int = 4,
               hidden_channels: int = 32, **kwargs):
    super().__init__(**kwargs)
    height, width, channels = image_shape
    if height % 2 or width % 2 or min(height, width, channels) < 1:
      raise ValueError(f"The dequantizer squeezes 2x2 blocks: image_shape "
                       f"needs an even height and width; got {image_shape}.")
    if num_steps < 1 or hidden_channels < 1:
      raise ValueError(f"num_steps and hidden_channels must be >= 1; got "
                       f"{num_steps} and {hidden_channels}.")
    self.keep_arguments(image_shape=tuple(image_shape), num_steps=num_steps,
                        hidden_channels=hidden_channels)
    self.noise_channels = 4 * channels

    def conv(name, in_channels):
      layer = keras.layers.Conv2D(
          hidden_channels, 3, padding="same",
          kernel_initializer=weight_norm.fan_in_uniform(),
          dtype=self.dtype_policy, name=name)
      layer.build((None, None, None, in_channels))
      return layer

    self.features_in = conv("features_in", self.noise_channels)
    self.features_out = conv("features_out", hidden_channels)
    self.couplings = [
        tracking.register(self, NoiseCouplingLayer(
            self.noise_channels, hidden_channels, hidden_channels,
            order=coupling.ORDERS[index % 2], dtype=self.dtype_policy,
            name=f"coupling_{index}"))
        for index in range(num_steps)]
    self.built = True

  def features(self, x_centres):
    """[N, H/2, W/2, hidden] features of the bin centres [N, H, W, C]."""
    h = keras.activations.elu(self.features_in(
        tf.nn.space_to_depth(x_centres, 2)))
    return keras.activations.elu(self.features_out(h))

  def make_bijector(self, *, initializing=False, cached=False):
    """logit(u) [N, H, W, C] -> eps [N, H/2, W/2, 4C]; pass the features as
    `z`."""
    del initializing  # No data-dependent parameters.
    return base.FlowChain(
        [squeeze.Squeeze()] +
        [layer.make_bijector(cached=cached) for layer in self.couplings],
        name=self.name)

  def sample(self, x_centres, seed, cached: bool = False):
    """u ~ q(u|x) in (0, 1) [N, H, W, C], and log q(u|x) [N] in nats.

    Args:
      x_centres: the image's bin centres in the flow's range.
      seed: int32 [2], of the noise eps.
      cached: read the weight-normalised kernels' inference cache.
    """
    features = self.features(x_centres)
    shape = tf.concat([tf.shape(features)[:3], [self.noise_channels]], 0)
    eps = tf.random.stateless_normal(shape, seed, dtype=features.dtype)
    y, log_det = self.make_bijector(cached=cached).inverse_and_log_det(
        eps, z=features)
    log_q = (prior_lib.standard_normal_log_prob(eps) - log_det -
             _sigmoid_log_det(y))
    # sigmoid(y) rounds to 0 or 1 beyond |y| ~ 17 (float32); keep u inside
    # the open bin, moving it by at most the float spacing near 1.
    gap = np.finfo(y.dtype.as_numpy_dtype).epsneg
    return tf.clip_by_value(tf.sigmoid(y), gap, 1.0 - gap), log_q

  def log_prob(self, u, x_centres, cached: bool = False):
    """log q(u|x) [N] in nats of given noise u in (0, 1) [N, H, W, C]."""
    y = tf.math.log(u) - tf.math.log1p(-u)  # logit(u)
    eps, log_det = self.make_bijector(cached=cached).forward_and_log_det(
        y, z=self.features(x_centres))
    return (prior_lib.standard_normal_log_prob(eps) + log_det -
            _sigmoid_log_det(y))


def make(model) -> Optional[VariationalDequantizer]:
  """The dequantizer of a ModelConfig: None for "uniform" noise."""
  if model.dequantization == "uniform":
    return None
  return VariationalDequantizer(
      model.image_shape, model.dequantizer.num_steps,
      model.dequantizer.hidden_channels, name="dequantizer")


def dequantize(dequantizer: Optional[VariationalDequantizer], x_bins, seed,
               n_bits: int, cached: bool = False):
  """x_bins plus noise u drawn from `seed`, in the flow's range, and
  log q(u|x) [N] in nats (None for uniform noise, whose log q is 0)."""
  if dequantizer is None:
    noise = tf.random.stateless_uniform(tf.shape(x_bins), seed)
    return quantization.to_flow_range(x_bins, noise, n_bits), None
  u, log_q = dequantizer.sample(
      quantization.to_flow_range(x_bins, 0.5, n_bits), seed, cached=cached)
  return quantization.to_flow_range(x_bins, u, n_bits), log_q
