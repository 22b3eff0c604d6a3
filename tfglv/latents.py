"""The model's two codes: what is true of them whatever the weights.

An image x has a global code z (d_z numbers, the posterior mean of q(z|x))
and a local code v = f(x; z) of the image's own shape [H, W, C]; the "glow"
variant has no global code, and its z tensors are [N, 0].

    Encoding(z, z_log_variance, v)   what `GLVAE.encode` returns
    as_seed, draw_noise              stateless seeds, and the standard normal
                                     noise that `GLVAE.latents_from_noise`
                                     turns into z ~ p(z), v ~ N(0, T^2 I)
    interpolate                      the paper's 2-D interpolation of codes
    check_latents, check_temperature, check_num_samples, check_fractions
                                     argument checks with their messages
                                     (MAX_LATENT_ABS, MAX_TEMPERATURE,
                                     FRACTION_RANGE: where the math holds)
"""

from typing import NamedTuple, Sequence

import numpy as np
import tensorflow as tf


class Encoding(NamedTuple):
  """What `GLVAE.encode` returns: the global code and the local code.

  Attributes:
    z: [N, d_z] posterior mean of q(z|x) ([N, 0] for "glow").
    z_log_variance: [N, d_z] log-variance of q(z|x).
    v: [N, H, W, C] local code v = f(x; z), so `decode(z, v) == x`.
  """
  z: tf.Tensor
  z_log_variance: tf.Tensor
  v: tf.Tensor


def as_seed(seed) -> tf.Tensor:
  """An int or an int tensor of shape [2] -> an int32 [2] stateless seed."""
  if isinstance(seed, (int, np.integer)):
    return tf.constant([int(seed) % (2**31 - 1), 0], dtype=tf.int32)
  seed = tf.convert_to_tensor(seed)
  if seed.shape.rank != 1 or seed.shape[0] != 2:
    raise ValueError(f"seed must be an int or an int tensor of shape [2]; "
                     f"got shape {seed.shape}.")
  return tf.cast(seed, tf.int32)


# Where the math breaks without a NaN to show it: a latent of 1e30 or a
# temperature of 1e6 decodes to saturated pixels (all black from a
# SavedModel, all white from TF Lite). Latents of real images stay within
# about +-10 (they are standard normal codes); sampling temperatures are
# about 0.7-1. Interpolation weights may extrapolate up to one image beyond
# either end.
MAX_LATENT_ABS = 1e4
MAX_TEMPERATURE = 10.0
FRACTION_RANGE = (-1.0, 2.0)


def check_temperature(temperature) -> None:
  """ValueError unless a Python number is in (0, MAX_TEMPERATURE] (tensors
  pass)."""
  if (isinstance(temperature, (int, float)) and
      not 0 < temperature <= MAX_TEMPERATURE):
    raise ValueError(f"temperature must be in (0, {MAX_TEMPERATURE:g}] "
                     f"(typically 0.7-1.0); got {temperature}.")


def check_fractions(name: str, fractions) -> None:
  """ValueError unless eager fractions lie in FRACTION_RANGE."""
  if tf.is_tensor(fractions) and not tf.executing_eagerly():
    return
  values = np.asarray(fractions, np.float64)
  low, high = FRACTION_RANGE
  if values.size and not (np.all(np.isfinite(values)) and
                          low <= values.min() and values.max() <= high):
    raise ValueError(f"{name} must lie in [{low:g}, {high:g}] (0: the "
                     f"first image, 1: the second); got {values.tolist()}.")


def check_num_samples(num_samples) -> None:
  """ValueError unless a Python number is >= 1 (tensors pass)."""
  if not tf.is_tensor(num_samples) and num_samples < 1:
    raise ValueError(f"num_samples must be >= 1; got {num_samples}.")


def check_latents(z, v, image_shape: Sequence[int], latent_dim: int):
  """(z, v) as float32 tensors; ValueError unless [N >= 1, d_z] and
  [N >= 1, H, W, C] and, when eager, finite."""
  z = tf.convert_to_tensor(z, tf.float32)
  v = tf.convert_to_tensor(v, tf.float32)
  h, w, c = image_shape
  if v.shape.rank != 4 or any(
      s is not None and s != e for s, e in zip(v.shape[1:], (h, w, c))):
    raise ValueError(f"v must be float32 [N, {h}, {w}, {c}]; got shape "
                     f"{v.shape}.")
  if z.shape.rank != 2 or (z.shape[1] is not None and
                           z.shape[1] != latent_dim):
    raise ValueError(f"z must be float32 [N, {latent_dim}]; got shape "
                     f"{z.shape}.")
  if v.shape[0] == 0 or z.shape[0] == 0:
    raise ValueError("z and v must hold at least one latent (N >= 1); got "
                     "an empty batch.")
  if tf.executing_eagerly():
    # A NaN or inf would decode to arbitrary pixels. (Traced callers, such
    # as the exported signatures, check in their own graphs.)
    for name, value in (("z", z), ("v", v)):
      value = value.numpy()
      if not np.all(np.isfinite(value)):
        raise ValueError(f"{name} must be finite; it holds NaN or inf.")
      largest = np.abs(value).max(initial=0.0)  # Glow's z is [N, 0].
      if largest > MAX_LATENT_ABS:
        raise ValueError(
            f"{name} must lie within +-{MAX_LATENT_ABS:g} (codes of real "
            f"images stay within about +-10); got a value of {largest:g}.")
  return z, v


def draw_noise(seed, num_samples, latent_dim: int, image_shape: Sequence[int]):
  """Standard normal (z_noise [n, d_z], v_noise [n, H, W, C]) from `seed`.

  Stateless: `seed` (see `as_seed`) is split into one seed per code, so the
  same seed draws the same noise in eager code and in a traced graph, where
  `num_samples` may be an int32 scalar tensor.
  """
  z_seed, v_seed = tf.unstack(
      tf.random.experimental.stateless_split(as_seed(seed), 2))
  z_noise = tf.random.stateless_normal(tf.stack([num_samples, latent_dim]),
                                       z_seed)
  v_noise = tf.random.stateless_normal(
      tf.stack([num_samples, *image_shape]), v_seed)
  return z_noise, v_noise


def interpolate(start: Encoding, end: Encoding, z_fractions, v_fractions):
  """The paper's two-dimensional interpolation of codes (Eq. 9, Fig. 5).

  Args:
    start, end: `Encoding`s of N images each (z and v are read).
    z_fractions: [A] weights a of end's z.
    v_fractions: [B] weights b of end's v.

  Returns:
    (z [N, A, B, d_z], v [N, A, B, H, W, C]); cell (n, i, j) holds
    z = (1 - a_i) z_start + a_i z_end and v = (1 - b_j) v_start + b_j v_end.

  Raises:
    ValueError: eager fractions outside FRACTION_RANGE.
  """
  check_fractions("z_fractions", z_fractions)
  check_fractions("v_fractions", v_fractions)
  a = tf.convert_to_tensor(z_fractions, tf.float32)[None, :, None]
  z = (1.0 - a) * start.z[:, None] + a * end.z[:, None]  # [N, A, d_z]
  b = tf.reshape(tf.convert_to_tensor(v_fractions, tf.float32),
                 [1, -1, 1, 1, 1])
  v = (1.0 - b) * start.v[:, None] + b * end.v[:, None]  # [N, B, H, W, C]
  grid = tf.stack([tf.shape(z)[0], tf.shape(z)[1], tf.shape(v)[1]])
  return (tf.broadcast_to(z[:, :, None], tf.concat([grid, tf.shape(z)[2:]], 0)),
          tf.broadcast_to(v[:, None], tf.concat([grid, tf.shape(v)[2:]], 0)))
