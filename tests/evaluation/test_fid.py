"""FID (paper Table 2): the Frechet distance, features, InceptionV3."""

import keras
import numpy as np
import pytest
import scipy.linalg
import tensorflow as tf

from tfglv.evaluation import fid

# ----------------------------------------------------------------- FID math


def _reference_frechet_distance(features_a, features_b):
  """d^2 through the symmetric form Tr((S1^1/2 S2 S1^1/2)^1/2).

  Tr((S1 S2)^1/2) equals the sum of square roots of the eigenvalues of the
  symmetric PSD matrix S1^1/2 S2 S1^1/2, so this avoids the non-symmetric
  sqrtm that `frechet_distance` uses.
  """
  mu_a, mu_b = features_a.mean(0), features_b.mean(0)
  sigma_a = np.cov(features_a, rowvar=False)
  sigma_b = np.cov(features_b, rowvar=False)
  eigenvalues, eigenvectors = np.linalg.eigh(sigma_a)
  root_a = (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))
            ) @ eigenvectors.T
  middle = np.linalg.eigvalsh(root_a @ sigma_b @ root_a)
  trace_covmean = np.sum(np.sqrt(np.clip(middle, 0, None)))
  return (np.sum((mu_a - mu_b) ** 2) + np.trace(sigma_a) + np.trace(sigma_b)
          - 2 * trace_covmean)


def _two_distributions(num_samples, dim=16, seed=0):
  rng = np.random.default_rng(seed)
  mixing_a = rng.normal(size=(dim, dim)) / np.sqrt(dim)
  mixing_b = rng.normal(size=(dim, dim)) / np.sqrt(dim)
  features_a = rng.normal(size=(num_samples, dim)) @ mixing_a
  features_b = rng.normal(size=(num_samples, dim)) @ mixing_b + 0.5
  return features_a, features_b


def test_feature_statistics_are_mean_and_unbiased_covariance():
  features, _ = _two_distributions(200)
  mu, sigma = fid.feature_statistics(features)
  centred = features - features.mean(0)
  np.testing.assert_allclose(mu, features.mean(0))
  np.testing.assert_allclose(sigma, centred.T @ centred / 199, atol=1e-12)


def test_frechet_distance_matches_symmetric_formula():
  features_a, features_b = _two_distributions(200)
  distance = fid.frechet_distance(*fid.feature_statistics(features_a),
                                  *fid.feature_statistics(features_b))
  expected = _reference_frechet_distance(features_a, features_b)
  assert distance > 1.0
  np.testing.assert_allclose(distance, expected, rtol=1e-8)


def test_frechet_distance_closed_form_one_dimension():
  # N(0, 1) vs N(3, 4): 9 + 1 + 4 - 2 * sqrt(1 * 4) = 10.
  assert fid.frechet_distance([0.0], [[1.0]], [3.0], [[4.0]]) == (
      pytest.approx(10.0, abs=1e-12))


def test_frechet_distance_identical_statistics_is_zero_and_symmetric():
  features_a, features_b = _two_distributions(200)
  stats_a = fid.feature_statistics(features_a)
  stats_b = fid.feature_statistics(features_b)
  assert abs(fid.frechet_distance(*stats_a, *stats_a)) < 1e-9
  np.testing.assert_allclose(fid.frechet_distance(*stats_a, *stats_b),
                             fid.frechet_distance(*stats_b, *stats_a),
                             rtol=1e-9)


def test_frechet_distance_singular_covariances_stay_finite_and_close():
  # 5 samples in 16 dimensions: both covariances have rank 4.
  features_a, features_b = _two_distributions(5)
  distance = fid.frechet_distance(*fid.feature_statistics(features_a),
                                  *fid.feature_statistics(features_b))
  assert np.isfinite(distance)
  np.testing.assert_allclose(
      distance, _reference_frechet_distance(features_a, features_b),
      rtol=1e-4)


def test_frechet_distance_retries_with_offset_when_sqrtm_fails(monkeypatch):
  features_a, features_b = _two_distributions(200)
  stats_a = fid.feature_statistics(features_a)
  stats_b = fid.feature_statistics(features_b)
  real_sqrtm = scipy.linalg.sqrtm
  calls = []

  def sqrtm_failing_once(matrix):
    calls.append(matrix)
    if len(calls) == 1:
      return np.full_like(matrix, np.nan)
    return real_sqrtm(matrix)

  monkeypatch.setattr(scipy.linalg, "sqrtm", sqrtm_failing_once)
  distance = fid.frechet_distance(*stats_a, *stats_b, eps=1e-6)
  assert len(calls) == 2
  offset = 1e-6 * np.eye(16)
  np.testing.assert_allclose(
      calls[1], (stats_a[1] + offset) @ (stats_b[1] + offset))
  np.testing.assert_allclose(
      distance, _reference_frechet_distance(features_a, features_b),
      rtol=1e-5)

  monkeypatch.setattr(scipy.linalg, "sqrtm",
                      lambda matrix: np.full_like(matrix, np.inf))
  with pytest.raises(ValueError, match="not finite"):
    fid.frechet_distance(*stats_a, *stats_b)


def test_frechet_distance_rejects_bad_inputs():
  eye = np.eye(3)
  with pytest.raises(ValueError, match="imaginary"):
    fid.frechet_distance(np.zeros(3), -eye, np.zeros(3), eye)
  with pytest.raises(ValueError, match="same length"):
    fid.frechet_distance(np.zeros(3), eye, np.zeros(4), np.eye(4))
  with pytest.raises(ValueError, match="sigma2"):
    fid.frechet_distance(np.zeros(3), eye, np.zeros(3), np.eye(4))
  with pytest.raises(ValueError, match="NaN"):
    fid.frechet_distance(np.zeros(3), eye * np.nan, np.zeros(3), eye)
  with pytest.raises(ValueError, match="sigma1 must be a symmetric"):
    fid.frechet_distance(np.zeros(3), np.triu(np.ones((3, 3))), np.zeros(3),
                         eye)
  with pytest.raises(ValueError, match=r"\[N, D\]"):
    fid.feature_statistics(np.zeros((4, 2, 2)))
  with pytest.raises(ValueError, match="at least 2"):
    fid.feature_statistics(np.zeros((1, 2)))


# ------------------------------------------------------ FID on image sets


def _tiny_feature_network():
  network = keras.Sequential([
      keras.Input((8, 8, 3)),
      keras.layers.Conv2D(
          6, 3, activation="relu",
          kernel_initializer=keras.initializers.GlorotUniform(seed=1),
          bias_initializer=keras.initializers.Constant(0.1)),
      keras.layers.GlobalAveragePooling2D(),
  ])
  return lambda images: network(images.astype(np.float32) / 255.0).numpy()


def test_compute_fid_with_small_random_network():
  feature_fn = _tiny_feature_network()
  rng = np.random.default_rng(0)
  images_a = rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
  images_b = rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
  images_dark = rng.integers(0, 96, (40, 8, 8, 3), dtype=np.uint8)

  fid_a_b = fid.compute_fid(images_a, images_b, feature_fn,
                                   batch_size=7)
  expected = fid.frechet_distance(
      *fid.feature_statistics(feature_fn(images_a)),
      *fid.feature_statistics(feature_fn(images_b)))
  np.testing.assert_allclose(fid_a_b, expected, rtol=1e-6)
  np.testing.assert_allclose(
      fid.compute_fid(images_b, images_a, feature_fn, batch_size=64),
      fid_a_b, rtol=1e-6)
  assert abs(fid.compute_fid(images_a, images_a, feature_fn)) < 1e-9
  # Same distribution versus a darker one.
  assert fid.compute_fid(images_a, images_dark, feature_fn) > (
      5 * fid_a_b)


def test_extract_features_flattens_and_validates():
  images = np.zeros((5, 2, 2, 1), np.uint8)
  features = fid.extract_features(images, lambda x: np.ones((len(x), 2, 3)),
                                  batch_size=2)
  assert features.shape == (5, 6)
  with pytest.raises(ValueError, match="one feature vector per image"):
    fid.extract_features(images, lambda x: np.ones((1, 2)), batch_size=2)
  with pytest.raises(ValueError, match="uint8"):
    fid.extract_features(images.astype(np.float32), lambda x: x)
  with pytest.raises(ValueError, match="batch_size"):
    fid.extract_features(images, lambda x: x, batch_size=0)


# ---------------------------------------------------- Inception extractor


def _inception_pool_network(channels=3):
  return keras.applications.InceptionV3(
      weights=None, include_top=False, pooling="avg",
      input_shape=(299, 299, channels))


@pytest.fixture(scope="module")
def inception_weights_file(tmp_path_factory):
  """A random-weight no-top InceptionV3 and its saved weights file."""
  network = _inception_pool_network()
  path = str(tmp_path_factory.mktemp("inception") / "inception.weights.h5")
  network.save_weights(path)
  return network, path


@pytest.fixture(scope="module")
def inception_extractor(inception_weights_file):
  # Built once: each InceptionV3 construction costs seconds on CPU.
  return fid.InceptionFeatureExtractor(inception_weights_file[1])


def test_inception_extractor_loads_weights_and_preprocesses(
    inception_weights_file, inception_extractor):
  reference_network, _ = inception_weights_file
  extractor = inception_extractor
  for loaded, saved in zip(extractor.network.weights,
                           reference_network.weights):
    np.testing.assert_array_equal(loaded.numpy(), saved.numpy())

  images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3),
                                             dtype=np.uint8)
  features = extractor(images)
  resized = tf.image.resize(images.astype(np.float32), [299, 299],
                            method="bilinear")
  expected = reference_network(resized / 127.5 - 1.0, training=False)
  assert features.shape == (2, 2048) and features.dtype == np.float32
  np.testing.assert_allclose(features, expected.numpy(), rtol=1e-4,
                             atol=1e-5)

  with pytest.raises(ValueError, match="C=2"):
    extractor(np.zeros((1, 8, 8, 2), np.uint8))


def test_inception_extractor_rejects_weights_of_other_models(
    inception_weights_file, inception_extractor, tmp_path):
  reference_network, _ = inception_weights_file
  extractor = inception_extractor
  small = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3),
                            keras.layers.GlobalAveragePooling2D()])
  small_path = str(tmp_path / "small.weights.h5")
  small.save_weights(small_path)
  with pytest.raises(ValueError, match="small.weights.h5.*InceptionV3"):
    extractor.load_weights(small_path)
  # Same number of arrays, but the first kernel is [3, 3, 1, 32].
  grayscale_path = str(tmp_path / "grayscale.weights.h5")
  _inception_pool_network(channels=1).save_weights(grayscale_path)
  with pytest.raises(ValueError, match="grayscale.weights.h5.*InceptionV3"):
    extractor.load_weights(grayscale_path)
  # Keras had loaded all but the first layer before failing; undone.
  for kept, saved in zip(extractor.network.weights,
                         reference_network.weights):
    np.testing.assert_array_equal(kept.numpy(), saved.numpy())


def test_inception_extractor_rejects_missing_or_misnamed_files(tmp_path):
  missing = str(tmp_path / "missing.weights.h5")
  with pytest.raises(ValueError, match="missing.weights.h5.*does not exist"):
    fid.InceptionFeatureExtractor(missing)
  text_file = tmp_path / "weights.txt"
  text_file.write_text("not weights")
  with pytest.raises(ValueError, match="must end in"):
    fid.InceptionFeatureExtractor(str(text_file))
  with pytest.raises(ValueError, match="imagenet"):
    fid.InceptionFeatureExtractor(None)
