"""uint8 images <-> the flow's continuous range [-1, 1) (DESIGN section 1).

An n_bits model sees an image on a grid of `n_bins = 2**n_bits` levels:

    x_bins = floor(x / 2**(8 - n_bits))               (`bins`)
    x      = (x_bins + u) * 2 / n_bins - 1  in [-1, 1)  (`to_flow_range`)

with u ~ U[0, 1) for the likelihood (uniform dequantisation) and u = 1/2,
the bin centre, for encoding. Mapping a bin of width 2 / n_bins in x to
probability mass gives -log P(x_bins) = -log p(x) + D log(n_bins / 2) for
D = H W C dimensions (`dequantization_log_det`). Decoding (`to_images`)
takes x back to its bin and the bin to its lowest grey level, so an
n_bits < 8 image comes back on its own grid and `to_images(to_flow_range(
bins(x), 0.5)) == x` for 8-bit images.
"""

import math
from typing import Sequence

import tensorflow as tf


def check_images(images, image_shape: Sequence[int]) -> tf.Tensor:
  """`images` as a tensor; ValueError unless uint8 [N >= 1, H, W, C]."""
  images = tf.convert_to_tensor(images)
  if images.dtype != tf.uint8:
    raise ValueError(f"images must be uint8 [N, H, W, C] in [0, 255]; got "
                     f"dtype {images.dtype.name}.")
  expected = tuple(image_shape)
  if images.shape.rank != 4:
    raise ValueError(f"images must have rank 4 [N, H, W, C] with "
                     f"H, W, C = {expected}; got shape {images.shape}.")
  if any(s is not None and s != e
         for s, e in zip(images.shape[1:], expected)):
    raise ValueError(f"images must have shape [N, {expected[0]}, "
                     f"{expected[1]}, {expected[2]}] for this model "
                     f"(model.image_size {expected[0]}, model.channels "
                     f"{expected[2]}); got {images.shape}.")
  if images.shape[0] == 0:
    # Keras convolutions mis-shape an empty batch instead of passing it on.
    raise ValueError("images must hold at least one image (N >= 1); got "
                     "an empty batch.")
  return images


def bins(images: tf.Tensor, n_bits: int) -> tf.Tensor:
  """uint8 images -> their float32 bin indices x_bins in [0, n_bins)."""
  return tf.cast(tf.bitwise.right_shift(images, 8 - n_bits), tf.float32)


def to_flow_range(x_bins: tf.Tensor, noise, n_bits: int) -> tf.Tensor:
  """Bin indices plus `noise` in [0, 1) (0.5: bin centres) -> [-1, 1)."""
  return (x_bins + noise) * (2.0 / 2**n_bits) - 1.0


def to_images(x, n_bits: int) -> tf.Tensor:
  """Continuous x in [-1, 1) -> uint8 images on the n_bits grid."""
  num_bins = 2**n_bits
  x_bins = tf.floor((tf.cast(x, tf.float32) + 1.0) * (num_bins / 2.0))
  x_bins = tf.clip_by_value(x_bins, 0.0, num_bins - 1.0)
  return tf.cast(x_bins, tf.uint8) * tf.constant(2**(8 - n_bits), tf.uint8)


def dequantization_log_det(num_dims: int, n_bits: int) -> float:
  """D log(n_bins / 2): -log P(x_bins) = -log p(x) + this, in nats."""
  return num_dims * math.log(2**n_bits / 2.0)
