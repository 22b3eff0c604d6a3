"""The linear probe of representations (paper Table 4)."""

import numpy as np
import pytest

from tfglv.evaluation import probe


def _clustered_features(num_per_class, num_classes, seed):
  rng = np.random.default_rng(seed)
  centres = np.random.default_rng(123).normal(size=(num_classes, 4, 4, 2))
  labels = np.repeat(np.arange(num_classes), num_per_class)
  features = centres[labels] * 3.0 + rng.normal(
      size=(labels.size, 4, 4, 2))
  return features, labels


def test_linear_probe_separable_features_score_high():
  train_features, train_labels = _clustered_features(30, 5, seed=0)
  test_features, test_labels = _clustered_features(20, 5, seed=1)
  accuracy = probe.linear_probe(train_features, train_labels,
                                test_features, test_labels[:, None])
  assert accuracy > 0.95


def test_linear_probe_random_labels_score_chance():
  rng = np.random.default_rng(0)
  accuracy = probe.linear_probe(
      rng.normal(size=(1000, 20)), rng.integers(0, 10, 1000),
      rng.normal(size=(1000, 20)), rng.integers(0, 10, 1000))
  assert 0.06 < accuracy < 0.14


def test_linear_probe_validates_shapes():
  features = np.zeros((10, 3))
  labels = np.arange(10) % 2
  with pytest.raises(ValueError, match="train_labels has 9"):
    probe.linear_probe(features, labels[:9], features, labels)
  with pytest.raises(ValueError, match="same size per example"):
    probe.linear_probe(features, labels, np.zeros((10, 4)), labels)
  with pytest.raises(ValueError, match=r"test_labels must have shape \[N\]"):
    probe.linear_probe(features, labels, features, np.zeros((10, 2)))
  with pytest.raises(ValueError, match="at least one feature axis"):
    probe.linear_probe(np.zeros(10), labels, features, labels)
  with pytest.raises(ValueError, match="2 classes"):
    probe.linear_probe(features, np.zeros(10), features, labels)
  with pytest.raises(ValueError, match="C must be > 0"):
    probe.linear_probe(features, labels, features, labels, C=0.0)
  with pytest.raises(ValueError, match="dual must be"):
    probe.linear_probe(features, labels, features, labels, dual="primal")


def test_format_probe_table_puts_paper_numbers_beside_ours():
  table = probe.format_probe_table({"z": 0.5812, "raw pixels": 0.35})
  lines = table.splitlines()
  assert lines[0].split() == ["Representation", "Accuracy", "(%)", "Paper",
                              "(%)"]
  assert lines[1].split() == ["z", "58.12", "59.53"]
  assert lines[2].split() == ["v", "-", "17.16"]
  assert lines[3].split() == ["raw", "pixels", "35.00", "35.32"]
  with pytest.raises(ValueError, match="allowed"):
    probe.format_probe_table({"pixels": 0.3})
  with pytest.raises(ValueError, match=r"\[0, 1\]"):
    probe.format_probe_table({"z": 59.53})
