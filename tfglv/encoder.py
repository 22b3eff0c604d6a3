"""Compression encoder q(z|x): a ResNet with batch norm (DESIGN section 2).

Each level is a stride-1 residual block (which sets the level's channels)
followed by a stride-2 residual block; levels continue until the map is 4x4.
A block is conv3x3-BN-ELU-conv3x3-BN plus a shortcut (1x1 conv + BN when
the shape changes), then ELU. Then a 1x1 conv to `out_channels`, ELU,
flatten, and one dense layer to `2 * d_z`: the mean and log-variance of a
diagonal Gaussian. That last layer is weight-normalised and initialised on
data so that its outputs start with std `final_init_stddev` (0.01): q(z|x)
starts close to N(0, I). `call(x, cached=True)` reads the head's stored
kernel (the inference cache, `WeightNormLayer.refresh_cache`). Batch norm
statistics are synchronised across replicas.
"""

from typing import Sequence

import keras
import tensorflow as tf

from tfglv.configs import schema
from tfglv.flows import tracking
from tfglv.layers import arguments
from tfglv.layers import weight_norm


@keras.saving.register_keras_serializable(package="tfglv")
class ResidualBlock(arguments.KeepsArguments, keras.layers.Layer):
  """conv3x3-BN-ELU-conv3x3-BN + shortcut, then ELU."""

  def __init__(self, in_channels: int, channels: int, stride: int = 1,
               **kwargs):
    super().__init__(**kwargs)
    self.keep_arguments(in_channels=in_channels, channels=channels,
                        stride=stride)
    bn = lambda name: keras.layers.BatchNormalization(
        synchronized=True, momentum=0.9, epsilon=1e-5, name=name)
    self.conv1 = keras.layers.Conv2D(channels, 3, strides=stride,
                                     padding="same", use_bias=False,
                                     name="conv1")
    self.bn1 = bn("bn1")
    self.conv2 = keras.layers.Conv2D(channels, 3, padding="same",
                                     use_bias=False, name="conv2")
    self.bn2 = bn("bn2")
    self.shortcut_conv = self.shortcut_bn = None
    if stride != 1 or in_channels != channels:
      self.shortcut_conv = keras.layers.Conv2D(
          channels, 1, strides=stride, use_bias=False, name="shortcut_conv")
      self.shortcut_bn = bn("shortcut_bn")

  def call(self, inputs, training=False):
    h = keras.activations.elu(self.bn1(self.conv1(inputs), training=training))
    h = self.bn2(self.conv2(h), training=training)
    shortcut = inputs
    if self.shortcut_conv is not None:
      shortcut = self.shortcut_bn(self.shortcut_conv(inputs),
                                  training=training)
    return keras.activations.elu(h + shortcut)


@keras.saving.register_keras_serializable(package="tfglv")
class Encoder(arguments.KeepsArguments, keras.layers.Layer):
  """x in [-1, 1) of shape [N, H, W, C] -> (mean, log_variance), each [N, d_z].

  Args:
    image_shape: (H, W, C); H = W, divisible by 2**len(channels) (the
      paper's sizes end at 4x4: 32x32 with 3 levels, 64x64 with 4, ...).
    channels: channels per level.
    out_channels: channels of the final 1x1 conv.
    latent_dim: d_z.
    final_init_stddev: std of the head's outputs after `initialize_head`
      (0: the head starts at exactly zero).
  """

  def __init__(self, image_shape: Sequence[int], channels: Sequence[int],
               out_channels: int, latent_dim: int,
               final_init_stddev: float = 0.01, **kwargs):
    super().__init__(**kwargs)
    height, width, in_channels = image_shape
    problem = schema.encoder_size_problem(height, len(channels))
    if problem or height != width:
      raise ValueError(problem or f"The encoder needs square images; got "
                       f"{height}x{width}.")
    # The side of the map the head reads (4 at the paper's sizes).
    self.final_side = height // 2 ** len(channels)
    self.keep_arguments(image_shape=tuple(image_shape),
                        channels=list(channels), out_channels=out_channels,
                        latent_dim=latent_dim,
                        final_init_stddev=final_init_stddev)
    self.blocks = []
    c = in_channels
    for level, width_ in enumerate(channels):
      for block in (ResidualBlock(c, width_, 1, name=f"level{level}_a"),
                    ResidualBlock(width_, width_, 2, name=f"level{level}_b")):
        self.blocks.append(tracking.register(self, block))
      c = width_
    self.top = keras.layers.Conv2D(out_channels, 1, name="top")
    # Weight-normalised, initialised on data (`initialize_head`) so that
    # mean and log-variance start at std `final_init_stddev`, as the
    # authors' LinearWeightNorm head does.
    self.head = weight_norm.WeightNormDense(
        2 * latent_dim, init_scale=final_init_stddev, name="head")
    # Create every variable now, so the model is complete before any data.
    self(tf.zeros((1,) + self.image_shape, dtype=self.compute_dtype))

  def features(self, inputs, training=False):
    """The flattened input of the head, [N, final_side**2 * out_channels]."""
    h = inputs
    for block in self.blocks:
      h = block(h, training=training)
    h = keras.activations.elu(self.top(h))
    return tf.reshape(h, [-1, self.out_channels * self.final_side ** 2])

  @property
  def head_initialized(self) -> bool:
    return (not self.head.data_dependent or
            bool(self.head.initialized.numpy()))

  def initialize_head(self, inputs) -> None:
    """Data-dependent init of the head on `inputs` (x in [-1, 1))."""
    if self.head.data_dependent:
      self.head.initialize_from(self.features(inputs, training=False))

  def call(self, inputs, training=False, cached=False):
    params = self.head(self.features(inputs, training=training),
                       cached=cached)
    mean, log_variance = tf.split(params, 2, axis=-1)
    return mean, log_variance
