"""The linear-probe command (paper Table 4) on a trained run.

Features of the train split (up to `max_train` images) and the test split:
z (posterior mean), v = f(x; z), and raw pixels. For every label column the
dataset has (CIFAR-10: "label"; the synthetic set: its factors "shape" and
"palette"), a standardised LinearSVC is trained on the train features and
scored on the test features (`probe.linear_probe`).

Cost: liblinear on 4000 x 3072 features (raw CIFAR pixels, and v) with
C = 1 did not converge within 15 min on a 2-core CPU; with C = 0.001 it
converges in about a minute (dual solver), hence DEFAULT_C. One C serves
every representation (one protocol), but its effect differs: a strong
penalty suits 3072-d pixels and v, while the 64-d z scores higher with a
weaker one (larger C); pass --probe_C to compare.
"""

import time
from typing import Dict, List, Optional, Tuple

from absl import logging
import numpy as np

from tfglv import data
from tfglv.evaluation import probe
from tfglv.evaluation import representations
from tfglv.evaluation import runs

DEFAULT_C = 1e-3
REPRESENTATIONS = probe.PROBE_ROWS  # ("z", "v", "raw pixels")


def svm_dual(num_examples: int, num_features: int) -> bool:
  """liblinear's dual solver when features are not few next to examples.

  Measured on 4000 x 3072 CIFAR pixels, C = 0.001: dual ~65 s, primal
  ~100 s; on 64-d codes the primal solver is the fast one.
  """
  return 2 * num_features >= num_examples


def probe_targets(train_labels: Dict[str, np.ndarray],
                  test_labels: Dict[str, np.ndarray]
                  ) -> Tuple[Dict[str, Tuple[np.ndarray, np.ndarray]],
                             Dict[str, List[str]]]:
  """Label columns worth probing, and the columns equal to an earlier one.

  A column is skipped when it marks missing labels (-1) or has fewer than
  two classes in the train split; a column identical to an earlier one on
  both splits (synthetic "shape" == "label") is recorded as its alias.

  Returns:
    ({name: (train labels, test labels)}, {name: [aliases]}).
  """
  targets, aliases = {}, {}
  for name in train_labels:
    train, test = train_labels[name], test_labels[name]
    if np.any(train < 0) or np.any(test < 0) or np.unique(train).size < 2:
      continue
    twin = next((other for other, (other_train, other_test) in
                 targets.items() if np.array_equal(train, other_train) and
                 np.array_equal(test, other_test)), None)
    if twin is not None:
      aliases[twin].append(name)
      continue
    targets[name] = (train, test)
    aliases[name] = []
  return targets, aliases


def _target_title(name: str, aliases: List[str]) -> str:
  return f"{name} (= {', '.join(aliases)})" if aliases else name


def format_targets_table(result: Dict) -> str:
  """Test accuracy (%) of every representation on every label column."""
  titles = [_target_title(name, result["aliases"][name])
            for name in result["targets"]]
  width = max([12] + [len(t) + 2 for t in titles])
  lines = [f"{'Representation':<22}" + "".join(f"{t:>{width}}" for t in titles)]
  for row in result["representations"]:
    cells = [result["accuracy"][name].get(row) for name in result["targets"]]
    lines.append(f"{row:<22}" + "".join(
        f"{100 * c:>{width}.2f}" if c is not None else f"{'-':>{width}}"
        for c in cells))
  lines.append(f"{'chance (majority class)':<22}" + "".join(
      f"{100 * result['chance'][name]:>{width}.2f}"
      for name in result["targets"]))
  return "\n".join(lines)


def run_linear_probe(run: runs.EvaluationRun, C: float = DEFAULT_C,
                     max_train: Optional[int] = None,
                     max_test: Optional[int] = None, max_iter: int = 1000,
                     batch_size: int = 64, progress: bool = True) -> Dict:
  """Linear probe of z, v and raw pixels on every label column.

  Returns a dict with "accuracy" {target: {representation: fraction}},
  "chance" {target: majority-class fraction of the test split}, sizes,
  settings, fit times, and "table": the paper's Table 4 layout for "label"
  (when probed) followed by a table of all targets.
  """
  config = run.config
  train_images, train_labels = data.load_arrays(config, "train", max_train)
  test_images, test_labels = data.load_arrays(config, "test", max_test)
  targets, aliases = probe_targets(train_labels, test_labels)
  if not targets:
    raise ValueError(
        f"The {config.data.dataset} dataset has no class labels to probe "
        f"(label columns {sorted(train_labels)} are missing (-1) or "
        f"constant); the linear probe needs labelled train and test splits.")
  bar = runs.ImageProgress(len(train_images) + len(test_images),
                           enabled=progress)
  features = {}
  for split, images in (("train", train_images), ("test", test_images)):
    z, v = [], []
    for start in range(0, len(images), batch_size):
      batch_z, batch_v = representations.encode_in_batches(
          run.model, images[start:start + batch_size], batch_size)
      z.append(batch_z)
      v.append(batch_v)
      bar.add(len(batch_z))
    features[split] = {"z": np.concatenate(z), "v": np.concatenate(v),
                       "raw pixels": images}
  # "glow" has no global code.
  rows = [row for row in REPRESENTATIONS
          if features["train"][row].reshape(len(train_images), -1).shape[1]]
  accuracy = {name: {} for name in targets}
  fit_seconds = {name: {} for name in targets}
  for name, (train_target, test_target) in targets.items():
    for row in rows:
      train_features = features["train"][row]
      num_features = int(np.prod(train_features.shape[1:]))
      start = time.time()
      accuracy[name][row] = probe.linear_probe(
          train_features, train_target, features["test"][row], test_target,
          C=C, max_iter=max_iter,
          dual=svm_dual(len(train_features), num_features))
      fit_seconds[name][row] = time.time() - start
      logging.info("Probe %s on %s: %.2f%% (%.1f s).", name, row,
                   100 * accuracy[name][row], fit_seconds[name][row])
  chance = {name: float(np.max(np.bincount(test)) / len(test))
            for name, (_, test) in targets.items()}
  result = {
      "targets": list(targets), "aliases": aliases, "representations": rows,
      "accuracy": accuracy, "chance": chance, "fit_seconds": fit_seconds,
      "num_train": len(train_images), "num_test": len(test_images),
      "C": C, "max_iter": max_iter, "step": run.step,
      "dataset": config.data.dataset, "paper_cifar10_percent":
          dict(probe.PAPER_ACCURACY_PERCENT),
  }
  header = (f"Linear probe: LinearSVC (C={C:g}) on standardised features, "
            f"{len(train_images)} train -> {len(test_images)} test images "
            f"(step {run.step})")
  parts = [header]
  if "label" in targets:
    title = _target_title("label", aliases["label"])
    parts += ["", f"Table 4 layout, target {title} (paper column: CIFAR-10):",
              probe.format_probe_table(accuracy["label"])]
  parts += ["", "Test accuracy (%) per label column:",
            format_targets_table(result)]
  result["table"] = "\n".join(parts)
  run.write_json("probe.json", result)
  run.write_csv("probe.csv", ("target", "representation", "accuracy",
                              "chance", "num_train", "num_test", "C"),
                [(name, row, accuracy[name][row], chance[name],
                  len(train_images), len(test_images), C)
                 for name in targets for row in rows])
  return result
