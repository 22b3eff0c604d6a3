"""Linear probe of representations (paper Table 4).

A linear SVM is trained on features of the training split and scored on the
test split, for the global code z (posterior mean), the local code v, and
raw pixels (DESIGN.md section 6). Features of any rank are flattened per
example and standardised (fit on the training split only), so pixel and
latent scales do not decide the result.
"""

from typing import Dict, Optional, Tuple, Union

import numpy as np
from sklearn import pipeline
from sklearn import preprocessing
from sklearn import svm

from tfglv.data import files

# Paper Table 4, CIFAR-10 accuracy (%), in the paper's row order.
PAPER_ACCURACY_PERCENT = {"z": 59.53, "v": 17.16, "raw pixels": 35.32}
PROBE_ROWS = tuple(PAPER_ACCURACY_PERCENT)


def _validate_split(features, labels, split: str
                    ) -> Tuple[np.ndarray, np.ndarray]:
  features = np.asarray(features)
  if features.ndim < 2:
    raise ValueError(f"{split}_features must have shape [N, ...] with at "
                     f"least one feature axis; got shape {features.shape}.")
  labels = files.labels_as_vector(labels, f"{split}_labels")
  if features.shape[0] != labels.shape[0]:
    raise ValueError(f"{split}_features has {features.shape[0]} examples "
                     f"but {split}_labels has {labels.shape[0]}.")
  if features.shape[0] == 0:
    raise ValueError(f"{split} split is empty.")
  features = features.reshape(features.shape[0], -1).astype(np.float64)
  if not np.all(np.isfinite(features)):
    raise ValueError(f"{split}_features contain NaN or Inf.")
  return features, labels


def linear_probe(train_features, train_labels, test_features, test_labels,
                 C: float = 1.0, max_iter: int = 1000,
                 dual: Union[str, bool] = "auto",
                 random_state: Optional[int] = 0) -> float:
  """Test accuracy of a linear SVM trained on the training features.

  Pipeline: per-feature standardisation (mean/variance of the training
  split), then `LinearSVC(C=C, dual=dual)` (one-vs-rest over classes).

  Cost: raw CIFAR-10 pixels (3072 features) are slow for liblinear on a
  2-core CPU. Measured: 1000 training images, C=1.0, stops unconverged at
  1000 iterations after ~85 s; 4000 images, C=1.0, primal: over 15 min;
  4000 images, C=0.001: converges in ~65 s (dual=True) or ~100 s (primal).
  Non-convergence is reported by scikit-learn's ConvergenceWarning, which
  is left to the caller.

  Args:
    train_features, test_features: arrays [N, ...] of any rank >= 2 (e.g. z
      [N, d_z], v [N, H, W, C], images [N, H, W, C]); flattened per example.
      The flattened sizes must agree.
    train_labels, test_labels: integer class labels [N] (or [N, 1]).
    C: inverse regularisation strength of the SVM, > 0.
    max_iter: iteration cap of the liblinear solver, >= 1.
    dual: "auto", True or False; "auto" solves the primal problem when
      there are more examples than features (scikit-learn's rule).
    random_state: seed of liblinear's coordinate shuffling.

  Returns:
    Accuracy on the test split, a float in [0, 1].
  """
  train_features, train_labels = _validate_split(
      train_features, train_labels, "train")
  test_features, test_labels = _validate_split(
      test_features, test_labels, "test")
  if train_features.shape[1] != test_features.shape[1]:
    raise ValueError(f"train and test features must have the same size per "
                     f"example; got {train_features.shape[1]} and "
                     f"{test_features.shape[1]} after flattening.")
  if np.unique(train_labels).size < 2:
    raise ValueError("train_labels must contain at least 2 classes.")
  if not C > 0:
    raise ValueError(f"C must be > 0; got {C}.")
  if max_iter < 1:
    raise ValueError(f"max_iter must be >= 1; got {max_iter}.")
  if dual not in ("auto", True, False):
    raise ValueError(f"dual must be 'auto', True or False; got {dual!r}.")
  classifier = pipeline.Pipeline([
      ("standardize", preprocessing.StandardScaler()),
      ("svm", svm.LinearSVC(C=C, dual=dual, max_iter=max_iter,
                            random_state=random_state)),
  ])
  classifier.fit(train_features, train_labels)
  return float(np.mean(classifier.predict(test_features) == test_labels))


def format_probe_table(results: Dict[str, float]) -> str:
  """Table 4 layout: our accuracy beside the paper's, in percent.

  Args:
    results: accuracy in [0, 1] by representation; keys among "z", "v",
      "raw pixels". Rows without a result show "-".

  Returns:
    The table as text (print it), e.g.

      Representation  Accuracy (%)  Paper (%)
      z                      58.10      59.53
      v                      17.00      17.16
      raw pixels             35.00      35.32
  """
  unknown = sorted(set(results) - set(PROBE_ROWS))
  if unknown:
    raise ValueError(f"Unknown probe rows {unknown}; allowed: "
                     f"{list(PROBE_ROWS)}.")
  for name, accuracy in results.items():
    if not 0.0 <= float(accuracy) <= 1.0:
      raise ValueError(f"Accuracy for {name!r} must be a fraction in [0, 1]; "
                       f"got {accuracy}.")
  lines = [f"{'Representation':<16}{'Accuracy (%)':>12}{'Paper (%)':>11}"]
  for name in PROBE_ROWS:
    ours = (f"{100.0 * float(results[name]):.2f}" if name in results
            else "-")
    lines.append(f"{name:<16}{ours:>12}{PAPER_ACCURACY_PERCENT[name]:>11.2f}")
  return "\n".join(lines)
