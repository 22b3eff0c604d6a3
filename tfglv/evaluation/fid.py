"""Fréchet Inception Distance (Heusel et al., 2017), paper Tables 2 and 3.

Two image sets are summarised by the mean and covariance of their features,
and compared with the Fréchet (2-Wasserstein) distance between the Gaussians
N(mu1, sigma1) and N(mu2, sigma2):

    d^2 = ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)).

The features are InceptionV3's 2048-d global-average-pool activations
(`InceptionFeatureExtractor`) or those of any callable images -> features
(`compute_fid(..., feature_fn=...)`), so tests can use a small network.

Scores are only comparable when computed with the same feature network. The
published FIDs (paper Table 2) used the TensorFlow "FID Inception" graph
(2015-12-05 weights); Keras' ImageNet InceptionV3 weights give scores on a
similar but not identical scale.
"""

import os
import warnings
from typing import Callable, Tuple, Union

import h5py
import keras
import numpy as np
import scipy.linalg
import tensorflow as tf

INCEPTION_IMAGE_SIZE = 299
INCEPTION_FEATURE_DIM = 2048
# Largest |imaginary part| on the diagonal of (sigma1 sigma2)^(1/2) that is
# treated as round-off; the usual tolerance of FID implementations.
_IMAGINARY_TOLERANCE = 1e-3
# Relative residual ||X X - A||_F / ||A||_F above which sqrtm is retried on a
# regularised product.
_SQRTM_RESIDUAL_TOLERANCE = 1e-5
_WEIGHT_FILE_SUFFIXES = (".weights.h5", ".h5", ".hdf5")
_INCEPTION_ARCHITECTURE = (
    "keras.applications.InceptionV3(include_top=False, pooling='avg', "
    "input_shape=(299, 299, 3)), e.g. the Keras file "
    "'inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5' or a "
    "'.weights.h5' saved from that model")

FeatureFn = Callable[[np.ndarray], Union[np.ndarray, tf.Tensor]]


def feature_statistics(features) -> Tuple[np.ndarray, np.ndarray]:
  """Mean and (unbiased) covariance of `features` [N, D] -> ([D], [D, D])."""
  features = np.asarray(features, dtype=np.float64)
  if features.ndim != 2:
    raise ValueError(f"features must have shape [N, D]; got shape "
                     f"{features.shape}.")
  if features.shape[0] < 2:
    raise ValueError(f"feature_statistics needs at least 2 feature vectors "
                     f"to estimate a covariance; got {features.shape[0]}.")
  if not np.all(np.isfinite(features)):
    raise ValueError("features contain NaN or Inf.")
  mu = features.mean(axis=0)
  sigma = np.cov(features, rowvar=False)
  return mu, np.atleast_2d(sigma)


def _sqrtm_checked(matrix: np.ndarray) -> Tuple[np.ndarray, float]:
  """scipy's sqrtm and its relative residual (inf when not finite)."""
  with warnings.catch_warnings():
    # A singular product warns; the residual below is the actual check.
    warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
    root = scipy.linalg.sqrtm(matrix)
  if not np.all(np.isfinite(root)):
    return root, np.inf
  norm = np.linalg.norm(matrix)
  residual = np.linalg.norm(root @ root - matrix) / max(norm, 1e-300)
  return root, residual


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
  """Squared Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

  Args:
    mu1, mu2: means, shape [D].
    sigma1, sigma2: covariances, shape [D, D].
    eps: diagonal offset added to both covariances when the matrix square
      root of their product is not finite or inaccurate (singular product,
      e.g. fewer samples than feature dimensions).

  Returns:
    d^2 = ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)), a
    Python float (>= 0 up to round-off).

  Raises:
    ValueError: shapes disagree, inputs are not finite, a covariance is not
      symmetric, or the square root has a large imaginary part (the
      covariances are not positive semi-definite).
  """
  mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
  mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
  sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
  sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
  if mu1.ndim != 1 or mu1.shape != mu2.shape:
    raise ValueError(f"mu1 and mu2 must be vectors of the same length [D]; "
                     f"got shapes {mu1.shape} and {mu2.shape}.")
  dim = mu1.shape[0]
  for name, sigma in (("sigma1", sigma1), ("sigma2", sigma2)):
    if sigma.shape != (dim, dim):
      raise ValueError(f"{name} must have shape [D, D] = {(dim, dim)} to "
                       f"match the means; got {sigma.shape}.")
  for name, value in (("mu1", mu1), ("mu2", mu2), ("sigma1", sigma1),
                      ("sigma2", sigma2)):
    if not np.all(np.isfinite(value)):
      raise ValueError(f"{name} contains NaN or Inf.")
  for name, sigma in (("sigma1", sigma1), ("sigma2", sigma2)):
    asymmetry = np.max(np.abs(sigma - sigma.T))
    if asymmetry > 1e-6 * max(1.0, np.max(np.abs(sigma))):
      raise ValueError(f"{name} must be a symmetric covariance matrix; "
                       f"max |{name} - {name}^T| = {asymmetry:.3g}.")
  if eps <= 0:
    raise ValueError(f"eps must be > 0; got {eps}.")

  covmean, residual = _sqrtm_checked(sigma1 @ sigma2)
  if residual > _SQRTM_RESIDUAL_TOLERANCE:
    offset = np.eye(dim) * eps
    covmean, residual = _sqrtm_checked((sigma1 + offset) @ (sigma2 + offset))
    if not np.isfinite(residual):
      raise ValueError(
          f"The matrix square root of sigma1 @ sigma2 is not finite, even "
          f"after adding eps={eps} to the diagonals; check the covariances.")
  if np.iscomplexobj(covmean):
    largest_imaginary = np.max(np.abs(np.diagonal(covmean).imag))
    if largest_imaginary > _IMAGINARY_TOLERANCE:
      raise ValueError(
          f"The matrix square root of sigma1 @ sigma2 has an imaginary part "
          f"of {largest_imaginary:.3g} on its diagonal (tolerance "
          f"{_IMAGINARY_TOLERANCE}); the covariances must be symmetric "
          f"positive semi-definite.")
    covmean = covmean.real

  difference = mu1 - mu2
  return float(difference @ difference + np.trace(sigma1) + np.trace(sigma2)
               - 2.0 * np.trace(covmean))


def _validate_images(images, name: str) -> np.ndarray:
  images = np.asarray(images)
  if images.ndim != 4 or images.dtype != np.uint8:
    raise ValueError(f"{name} must be uint8 images [N, H, W, C]; got dtype "
                     f"{images.dtype} and shape {images.shape}.")
  return images


def extract_features(images, feature_fn: FeatureFn,
                     batch_size: int = 50) -> np.ndarray:
  """Applies `feature_fn` to uint8 `images` [N, H, W, C] in batches.

  Returns float64 [N, D]: each batch's output flattened past its first axis.
  """
  images = _validate_images(images, "images")
  if not callable(feature_fn):
    raise ValueError(f"feature_fn must be callable images -> features; got "
                     f"{type(feature_fn).__name__}.")
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
  batches = []
  for start in range(0, images.shape[0], batch_size):
    batch = images[start:start + batch_size]
    features = np.asarray(feature_fn(batch), dtype=np.float64)
    if features.ndim < 1 or features.shape[0] != batch.shape[0]:
      raise ValueError(f"feature_fn must return one feature vector per "
                       f"image: got shape {features.shape} for "
                       f"{batch.shape[0]} images.")
    batches.append(features.reshape(batch.shape[0], -1))
  return np.concatenate(batches, axis=0)


def compute_fid(images_a, images_b, feature_fn: FeatureFn,
                batch_size: int = 50) -> float:
  """FID between two uint8 image sets [N, H, W, C] under `feature_fn`.

  Args:
    images_a, images_b: uint8 arrays, at least 2 images each (a meaningful
      FID needs many more than the feature dimension: 10k-50k for
      Inception's 2048).
    feature_fn: callable uint8 [n, H, W, C] -> features [n, ...], e.g. an
      `InceptionFeatureExtractor`.
    batch_size: images per `feature_fn` call.

  Returns:
    The squared Fréchet distance between the feature Gaussians (float).
  """
  images_a = _validate_images(images_a, "images_a")
  images_b = _validate_images(images_b, "images_b")
  mu_a, sigma_a = feature_statistics(
      extract_features(images_a, feature_fn, batch_size))
  mu_b, sigma_b = feature_statistics(
      extract_features(images_b, feature_fn, batch_size))
  return frechet_distance(mu_a, sigma_a, mu_b, sigma_b)


class InceptionFeatureExtractor:
  """InceptionV3 pool features: uint8 [N, H, W, C] -> float32 [N, 2048].

  Images (C = 3, or C = 1 repeated to RGB) are resized bilinearly to
  299 x 299, mapped to [-1, 1] by InceptionV3's `preprocess_input`, and
  passed through the network without its classifier; the features are the
  global average pool of the last convolutional block.

  The network is built with `weights=None` and then loaded from a local
  file, so nothing is downloaded:

      extractor = InceptionFeatureExtractor(
          "/data/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5")
      score = compute_fid(real_images, samples, extractor, batch_size=100)

  Args:
    weights: path of a Keras weights file (".weights.h5", or a legacy
      ".h5"/".hdf5") of the no-top InceptionV3, or "imagenet" to let Keras
      download them (needs network access).
  """

  def __init__(self, weights: str):
    if not isinstance(weights, (str, os.PathLike)):
      raise ValueError(f"weights must be a weights-file path or 'imagenet'; "
                       f"got {weights!r}.")
    weights = os.fspath(weights)
    if weights != "imagenet":
      _check_weights_path(weights)
    self.weights = weights
    self.network = keras.applications.InceptionV3(
        weights="imagenet" if weights == "imagenet" else None,
        include_top=False, pooling="avg",
        input_shape=(INCEPTION_IMAGE_SIZE, INCEPTION_IMAGE_SIZE, 3))
    if weights != "imagenet":
      self.load_weights(weights)
    self._features = tf.function(self._features_graph, reduce_retracing=True)

  def load_weights(self, path: str) -> None:
    """Loads a weights file into the network.

    Raises:
      ValueError: the file is missing or does not fit the architecture; the
        network then keeps the weights it had.
    """
    path = os.fspath(path)
    _check_weights_path(path)
    if path.endswith(".weights.h5"):
      # Keras only warns about groups of the model missing from the file, so
      # a file of a smaller model could load partially; count arrays first.
      num_arrays = _count_h5_arrays(path)
      if num_arrays != len(self.network.weights):
        raise ValueError(
            f"Weights file '{path}' holds {num_arrays} arrays but the "
            f"expected architecture, {_INCEPTION_ARCHITECTURE}, has "
            f"{len(self.network.weights)}.")
    # Keras assigns layer by layer, so a failed load can leave a mixture.
    previous_weights = self.network.get_weights()
    try:
      with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        self.network.load_weights(path)
    except (ValueError, KeyError, TypeError, OSError) as error:
      self.network.set_weights(previous_weights)
      raise ValueError(
          f"Weights file '{path}' does not fit the expected architecture, "
          f"{_INCEPTION_ARCHITECTURE}: {str(error)[:500]}") from error

  def _features_graph(self, images: tf.Tensor) -> tf.Tensor:
    images = tf.cast(images, tf.float32)
    if images.shape[-1] == 1:
      images = tf.tile(images, [1, 1, 1, 3])
    images = tf.image.resize(
        images, [INCEPTION_IMAGE_SIZE, INCEPTION_IMAGE_SIZE],
        method="bilinear")
    images = keras.applications.inception_v3.preprocess_input(images)
    return self.network(images, training=False)

  def __call__(self, images) -> np.ndarray:
    images = _validate_images(images, "images")
    if images.shape[-1] not in (1, 3):
      raise ValueError(f"InceptionFeatureExtractor takes RGB (C=3) or "
                       f"grayscale (C=1) images; got C={images.shape[-1]}.")
    return self._features(tf.convert_to_tensor(images)).numpy()


def _check_weights_path(path: str) -> None:
  if not path.endswith(_WEIGHT_FILE_SUFFIXES):
    raise ValueError(f"Weights file '{path}' must end in one of "
                     f"{_WEIGHT_FILE_SUFFIXES}; expected weights of "
                     f"{_INCEPTION_ARCHITECTURE}.")
  if not os.path.isfile(path):
    raise ValueError(f"Weights file '{path}' does not exist; expected "
                     f"weights of {_INCEPTION_ARCHITECTURE}.")


def _count_h5_arrays(path: str) -> int:
  count = 0

  def visit(unused_name, item):
    nonlocal count
    if isinstance(item, h5py.Dataset):
      count += 1

  try:
    with h5py.File(path, "r") as h5_file:
      h5_file.visititems(visit)
  except OSError as error:
    raise ValueError(
        f"Weights file '{path}' is not a readable HDF5 file; expected "
        f"weights of {_INCEPTION_ARCHITECTURE}.") from error
  return count
