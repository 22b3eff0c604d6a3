"""The linear-probe command (paper Table 4) on a tiny run trained for a few
steps (see tests/evaluation/conftest.py)."""

import csv
import os

import numpy as np
import pytest

from tfglv import data
from tfglv.evaluation import probe_command


def test_probe_targets_skip_missing_and_alias_duplicates():
  labels = np.array([0, 1, 2, 0])
  targets, aliases = probe_command.probe_targets(
      {"label": labels, "shape": labels.copy(), "palette": labels[::-1],
       "none": -np.ones(4, int), "constant": np.zeros(4, int)},
      {"label": labels, "shape": labels.copy(), "palette": labels,
       "none": -np.ones(4, int), "constant": np.zeros(4, int)})
  assert list(targets) == ["label", "palette"]
  assert aliases == {"label": ["shape"], "palette": []}


def test_probe_on_synthetic_factor_labels(run, trained_workdir):
  result = probe_command.run_linear_probe(run, max_train=256, max_test=64,
                                          batch_size=32)
  assert result["num_train"] == 256 and result["num_test"] == 64
  # The synthetic set's factors: "label" is the shape.
  assert result["targets"] == ["label", "palette"]
  assert result["aliases"] == {"label": ["shape"], "palette": []}
  assert result["representations"] == ["z", "v", "raw pixels"]
  _, test_labels = data.load_arrays(run.config, "test", max_examples=64)
  for name in result["targets"]:
    counts = np.bincount(test_labels[name])
    assert result["chance"][name] == pytest.approx(counts.max() / 64)
    for accuracy in result["accuracy"][name].values():
      assert 0.0 <= accuracy <= 1.0
  # The palette (background/foreground colours) is linear in the pixels.
  assert (result["accuracy"]["palette"]["raw pixels"] >
          result["chance"]["palette"] + 0.3)
  table = result["table"]
  assert "Table 4 layout, target label (= shape)" in table
  assert "59.53" in table  # the paper column
  row = next(l for l in table.splitlines()[::-1] if l.startswith("v "))
  assert row.split()[1:] == [
      f"{100 * result['accuracy'][t]['v']:.2f}" for t in result["targets"]]
  with open(os.path.join(trained_workdir, "eval", "probe.csv")) as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 6
  assert float(rows[0]["accuracy"]) == result["accuracy"]["label"]["z"]
