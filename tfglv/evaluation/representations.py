"""The representation operations of the paper on a trained model (DESIGN §6).

With z the global code (posterior mean) and v = f(x; z) the local code of an
image x, and g = f^-1 the decoder:

    switch:         (x_a, x_b) -> g(v_a; z_b), g(v_b; z_a)      (paper Fig. 1)
    interpolation:  cell (i, j) = g((1 - beta_j) v_1 + beta_j v_2;
                                    (1 - alpha_i) z_1 + alpha_i z_2)
                    with the paper's alpha (rows) and beta (columns)
                    values of the footnote of its Figure 5
    samples:        z ~ p(z), v ~ N(0, temperature^2 I), x = g(v; z)

Corners of an interpolation grid are exact reconstructions: (alpha, beta) =
(0, 0) is x_1 and (1, 1) is x_2; (1, 0) and (0, 1) are the two switches.

The operations themselves are `GLVAE`'s (`switch`, `interpolate`, `sample`,
`encode`, `decode`); this module runs them in batches over numpy arrays, so
whole splits fit in memory.
"""

from typing import Sequence, Tuple

import numpy as np
import tensorflow as tf

from tfglv import latents
from tfglv import model as model_lib

# Paper Figure 5, footnote 3: alpha (global code z) down each column, beta
# (local code v) along each row.
INTERPOLATION_ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)
INTERPOLATION_BETAS = tuple(round(0.1 * i, 1) for i in range(11))
# Temperatures of v for sample grids; DESIGN §6 (wolf: 0.7-1.0).
SAMPLE_TEMPERATURES = (0.7, 0.8, 0.9, 1.0)


def check_temperatures(temperatures: Sequence[float]) -> Tuple[float, ...]:
  """Returns the temperatures as floats; raises ValueError unless all > 0."""
  temperatures = tuple(temperatures)
  if not temperatures:
    raise ValueError(f"temperatures must list at least one value > 0, e.g. "
                     f"{','.join(map(str, SAMPLE_TEMPERATURES))}.")
  checked = []
  for temperature in temperatures:
    try:
      value = float(temperature)
    except (TypeError, ValueError):
      raise ValueError(f"temperatures must be numbers > 0; got "
                       f"{temperature!r}.") from None
    if not (value > 0 and np.isfinite(value)):
      raise ValueError(f"temperatures must be finite and > 0 (they scale the "
                       f"standard deviation of v; typically 0.7-1.0); got "
                       f"{temperature}.")
    checked.append(value)
  return tuple(checked)


def _check_batch_size(batch_size: int):
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1; got {batch_size}.")


def encode_in_batches(model: model_lib.GLVAE, images, batch_size: int = 64
                      ) -> Tuple[np.ndarray, np.ndarray]:
  """uint8 [N, H, W, C] -> (z float32 [N, d_z], v float32 [N, H, W, C])."""
  _check_batch_size(batch_size)
  images = np.asarray(images)
  codes_z, codes_v = [], []
  for start in range(0, len(images), batch_size):
    z, _, v = model.encode(tf.constant(images[start:start + batch_size]))
    codes_z.append(z.numpy())
    codes_v.append(v.numpy())
  return np.concatenate(codes_z), np.concatenate(codes_v)


def decode_in_batches(model: model_lib.GLVAE, z, v, batch_size: int = 64
                      ) -> np.ndarray:
  """(z [N, d_z], v [N, H, W, C]) -> uint8 images [N, H, W, C]."""
  _check_batch_size(batch_size)
  z = np.asarray(z, np.float32)
  v = np.asarray(v, np.float32)
  if len(z) != len(v):
    raise ValueError(f"z and v must hold the same number of codes; got "
                     f"{len(z)} and {len(v)}.")
  return np.concatenate([
      model.decode(z[start:start + batch_size],
                   v[start:start + batch_size]).numpy()
      for start in range(0, len(z), batch_size)])


def sample_in_batches(model: model_lib.GLVAE, num_images: int,
                      temperature: float = 1.0, seed: int = 0,
                      batch_size: int = 64) -> np.ndarray:
  """`num_images` uint8 samples; batch i uses the seed (seed, i)."""
  _check_batch_size(batch_size)
  check_temperatures([temperature])
  if num_images < 1:
    raise ValueError(f"num_images must be >= 1; got {num_images}.")
  batches = []
  for index, start in enumerate(range(0, num_images, batch_size)):
    count = min(batch_size, num_images - start)
    batch_seed = tf.constant([seed % (2**31 - 1), index], tf.int32)
    batches.append(model.sample(count, temperature=temperature,
                                seed=batch_seed).numpy())
  return np.concatenate(batches)


def switch(model: model_lib.GLVAE, images_a, images_b, batch_size: int = 64
           ) -> Tuple[np.ndarray, np.ndarray]:
  """Swaps the global codes of paired images (paper Figure 1).

  Args:
    model: a trained model.
    images_a, images_b: uint8 [N, H, W, C]; image i of each forms a pair.
    batch_size: images per `GLVAE.switch` call.

  Returns:
    (g(v_a; z_b), g(v_b; z_a)), each uint8 [N, H, W, C]: each image keeps
    its own local code and takes its partner's global code.
  """
  _check_batch_size(batch_size)
  images_a = np.asarray(images_a)
  images_b = np.asarray(images_b)
  if images_a.shape != images_b.shape:
    raise ValueError(f"images_a and images_b must have the same shape; got "
                     f"{images_a.shape} and {images_b.shape}.")
  with_v_a, with_v_b = [], []
  for start in range(0, len(images_a), batch_size):
    batch_a = tf.constant(images_a[start:start + batch_size])
    batch_b = tf.constant(images_b[start:start + batch_size])
    with_v_a.append(model.switch(batch_b, batch_a).numpy())
    with_v_b.append(model.switch(batch_a, batch_b).numpy())
  return np.concatenate(with_v_a), np.concatenate(with_v_b)


def interpolate(model: model_lib.GLVAE, image_1, image_2,
                alphas: Sequence[float] = INTERPOLATION_ALPHAS,
                betas: Sequence[float] = INTERPOLATION_BETAS) -> np.ndarray:
  """Two-dimensional interpolation between two images (paper Eq. 9, Fig. 5).

  `GLVAE.interpolate` of one pair (the codes of both images from one
  `encode`, mixed by `latents.interpolate`), decoded one row (one alpha) at a
  time so that a large model decodes len(betas) images per call.

  Args:
    model: a trained model.
    image_1, image_2: uint8 [H, W, C].
    alphas: weights of z_2 in the global code, one per row.
    betas: weights of v_2 in the local code, one per column.

  Returns:
    uint8 [len(alphas), len(betas), H, W, C]; cell (i, j) decodes
    z = (1 - alphas[i]) z_1 + alphas[i] z_2 and
    v = (1 - betas[j]) v_1 + betas[j] v_2.
  """
  images = np.stack([np.asarray(image_1), np.asarray(image_2)])
  if images.ndim != 4:
    raise ValueError(f"image_1 and image_2 must be single images [H, W, C]; "
                     f"got shape {images.shape[1:]}.")
  encoding = model.encode(tf.constant(images))
  z, v = latents.interpolate(
      tf.nest.map_structure(lambda code: code[:1], encoding),
      tf.nest.map_structure(lambda code: code[1:], encoding),
      np.asarray(alphas, np.float32), np.asarray(betas, np.float32))
  cells = decode_in_batches(model, tf.reshape(z, (-1, z.shape[-1])),
                            tf.reshape(v, (-1,) + images.shape[1:]),
                            batch_size=len(betas))
  return cells.reshape((len(alphas), len(betas)) + images.shape[1:])
