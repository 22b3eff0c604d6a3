"""Glow's "edge bias": convolutions that see where the image ends.

Glow's code (Kingma & Dhariwal, 2018) pads the input of each 3x3
convolution of its coupling networks and priors with zeros, and appends
one constant channel that is 1 on the padding ring and 0 inside, so the
network can tell the image border from a zero activation. Its kernel has
C + 1 input channels, and the output is

    conv_valid([pad(x), ring]) = conv_same(x, K[:, :, :C]) + border,
    border = conv_valid(ring, K[:, :, C:])

`border` depends on the image size only, not on x; it is computed from
the one ring channel, never concatenated to x (which would copy a wide
activation). With C = 0 the output is `border` alone, [1, H, W, out]: a
learned map of positions, which is Glow's learned top prior (a convolution
of zeros) without the weights that only ever meet zeros.

Layers, each with a kernel of C + 1 input channels:
  * `EdgeConv2D`: a plain kernel (Glow's hidden convolutions);
  * `WeightNormEdgeConv2D`: weight-normalised with `g = 0` (our coupling
    outputs: `tfglv/layers/weight_norm.py` says why);
  * `ZeroEdgeConv2D`: Glow's `conv2d_zeros`, every weight 0 at the start
    and the output scaled by exp(3 * log_scale) (its priors).
"""

import keras
import tensorflow as tf

from tfglv.layers import arguments
from tfglv.layers import weight_norm

# Glow's `logscale_factor`: log_scale moves 3x faster than the kernel.
LOG_SCALE_FACTOR = 3.0
# Glow's `default_initializer`: N(0, 0.05^2).
KERNEL_STDDEV = 0.05


def edge_conv2d(inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
  """inputs [N, H, W, C] (*) kernel [k, k, C + 1, out] with the edge ring
  as the last input channel; [N, H, W, out] ([1, H, W, out] when C = 0)."""
  size = kernel.shape[0]
  pad = (size - 1) // 2
  channels = inputs.shape[-1]
  kernel = tf.cast(kernel, inputs.dtype)
  main, edge = tf.split(kernel, [channels, 1], axis=2)
  shape = tf.shape(inputs)
  ring = tf.pad(tf.zeros(tf.stack([1, shape[1], shape[2], 1]), inputs.dtype),
                [[0, 0], [pad, pad], [pad, pad], [0, 0]], constant_values=1)
  border = tf.nn.conv2d(ring, edge, strides=1, padding="VALID")
  if not channels:
    return border
  return tf.nn.conv2d(inputs, main, strides=1, padding="SAME") + border


@keras.saving.register_keras_serializable(package="tfglv")
class EdgeConv2D(arguments.KeepsArguments, keras.layers.Layer):
  """`edge_conv2d` with a plain kernel, no bias (an ActNorm follows).

  Args:
    filters: output channels.
    kernel_size: odd, >= 3 (a 1x1 convolution has no edge).
  """

  kernel_initializer = keras.initializers.RandomNormal(stddev=KERNEL_STDDEV)

  def __init__(self, filters: int, kernel_size: int = 3, **kwargs):
    super().__init__(**kwargs)
    if filters < 1:
      raise ValueError(f"filters must be >= 1; got {filters}.")
    if kernel_size < 3 or kernel_size % 2 == 0:
      raise ValueError("kernel_size must be an odd integer >= 3 (a 1x1 "
                       f"convolution has no edge); got {kernel_size}.")
    self.keep_arguments(filters=filters, kernel_size=kernel_size)

  def build(self, input_shape):
    channels = input_shape[-1]
    if channels is None:
      raise ValueError(f"{type(self).__name__} needs a static channel "
                       f"count; got input shape {input_shape}.")
    self.kernel = self.add_weight(
        shape=(self.kernel_size, self.kernel_size, channels + 1,
               self.filters), initializer=self.kernel_initializer,
        name="kernel")
    self.built = True

  def call(self, inputs, cached=False):
    del cached  # Nothing cached: the kernel is the variable.
    return edge_conv2d(inputs, self.kernel)


@keras.saving.register_keras_serializable(package="tfglv")
class ZeroEdgeConv2D(EdgeConv2D):
  """Glow's `conv2d_zeros`: (edge_conv2d(x, K) + b) * exp(3 * log_scale),
  with K, b and log_scale all zero at the start (the output is 0)."""

  kernel_initializer = "zeros"

  def build(self, input_shape):
    super().build(input_shape)
    self.bias = self.add_weight(shape=(self.filters,), initializer="zeros",
                                name="bias")
    self.log_scale = self.add_weight(shape=(self.filters,),
                                     initializer="zeros", name="log_scale")

  def call(self, inputs, cached=False):
    outputs = tf.nn.bias_add(super().call(inputs, cached),
                             tf.cast(self.bias, inputs.dtype))
    scale = tf.exp(LOG_SCALE_FACTOR * tf.cast(self.log_scale, inputs.dtype))
    return outputs * scale


@keras.saving.register_keras_serializable(package="tfglv")
class WeightNormEdgeConv2D(weight_norm.WeightNormConv2D):
  """`edge_conv2d` with a weight-normalised kernel: the norm of each output
  unit runs over the input channels and the edge channel together."""

  def __init__(self, filters: int, kernel_size: int = 3, **kwargs):
    if kernel_size < 3:
      raise ValueError("kernel_size must be an odd integer >= 3 (a 1x1 "
                       f"convolution has no edge); got {kernel_size}.")
    super().__init__(filters, kernel_size, **kwargs)

  def _kernel_shape(self, input_dim):
    return super()._kernel_shape(input_dim + 1)

  def _apply(self, inputs, kernel):
    return edge_conv2d(inputs, kernel)
