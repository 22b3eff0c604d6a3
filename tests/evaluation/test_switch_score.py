"""The scored switch: switches built to transfer and built not to, read by
an exact classifier; then the task on the tiny trained run."""

import json
import os

import numpy as np
import pytest

from tfglv.data import synthetic
from tfglv.evaluation import switch_score

FACTORS = ("shape", "palette")


class _LookupClassifier:
  """Knows every image of a pool by its bytes: an exact classifier, so the
  rates below are the scorer's alone."""

  def __init__(self, images, labels):
    self._labels = {image.tobytes(): label
                    for image, label in zip(switch_score._pixels(images),
                                            labels)}

  def predict(self, pixels):
    return np.array([self._labels[row.tobytes()] for row in pixels])


@pytest.fixture(scope="module")
def pool():
  return synthetic.generate(600, 16, 3, seed=4)


def _pairs(count=100):
  return np.arange(count), np.arange(count, 2 * count)


def _score(pool, switch_fn):
  """Scores switched images switch_fn(z donor index, v donor index)."""
  a, b = _pairs()
  classifiers = {f: _LookupClassifier(pool["image"], pool[f])
                 for f in FACTORS}
  return switch_score.score_switches(
      classifiers, pool["image"][a], pool["image"][b],
      {f: pool[f][a] for f in FACTORS}, {f: pool[f][b] for f in FACTORS},
      with_v_a=pool["image"][[switch_fn(j, i) for i, j in zip(a, b)]],
      with_v_b=pool["image"][[switch_fn(i, j) for i, j in zip(a, b)]])


def test_a_switch_built_to_transfer_follows_z(pool):
  # decode(z_b, v_a) == x_b: everything comes with z.
  scores = _score(pool, lambda z_donor, v_donor: z_donor)
  for factor in FACTORS:
    rates = scores[factor]
    assert rates["classifier_accuracy"] == 1.0
    assert rates["follows_z"] == 1.0 and rates["follows_v"] == 0.0
    assert rates["neither"] == 0.0
    a, b = _pairs()
    assert rates["num_scored"] == 2 * np.sum(pool[factor][a] !=
                                                  pool[factor][b])


def test_a_switch_built_not_to_transfer_follows_v(pool):
  # decode(z_b, v_a) == x_a: z changes nothing (a collapsed code).
  scores = _score(pool, lambda z_donor, v_donor: v_donor)
  for factor in FACTORS:
    assert scores[factor]["follows_z"] == 0.0
    assert scores[factor]["follows_v"] == 1.0
    assert scores[factor]["kept_when_donors_agree"] == 1.0


def test_each_factor_is_scored_on_its_own(pool):
  # A switch that takes the shape from z and the palette from v: some pool
  # image has each (shape, palette) combination.
  index = {(s, p): i for i, (s, p) in enumerate(zip(pool["shape"],
                                                    pool["palette"]))}
  scores = _score(pool, lambda z_donor, v_donor: index[
      pool["shape"][z_donor], pool["palette"][v_donor]])
  assert scores["shape"]["follows_z"] == 1.0
  assert scores["palette"]["follows_v"] == 1.0


def test_transfer_rates_by_hand():
  # Donors differ in the first four; the switch reads z, v, neither, z.
  rates = switch_score.transfer_rates(z_donor_labels=[1, 1, 1, 1, 5, 5],
                                      v_donor_labels=[2, 2, 2, 2, 5, 5],
                                      predicted=[1, 2, 3, 1, 5, 0])
  assert rates == {"num_scored": 4, "follows_z": 0.5, "follows_v": 0.25,
                   "neither": 0.25, "kept_when_donors_agree": 0.5}
  same = switch_score.transfer_rates([1, 2], [1, 2], [1, 2])
  assert same["follows_z"] is None and same["kept_when_donors_agree"] == 1.0
  with pytest.raises(ValueError, match="one entry per switched image"):
    switch_score.transfer_rates([1, 2], [1], [1, 2])


def test_the_switch_task_on_a_trained_run(run, trained_workdir):
  result = switch_score.evaluate_switch(run, "test", num_pairs=2,
                                        score_pairs=20,
                                        classifier_max_train=200)
  assert result["score_pairs"] == 20
  assert result["classifier_train_images"] == 200
  # The synthetic set's label columns; "label" is the same as "shape".
  assert list(result["transfer"]) == ["label", "palette"]
  assert result["aliases"]["label"] == ["shape"]
  for rates in result["transfer"].values():
    assert 0.0 <= rates["classifier_accuracy"] <= 1.0
    if rates["num_scored"]:
      assert rates["follows_z"] + rates["follows_v"] + rates["neither"] == (
          pytest.approx(1.0))
  # The palette is easy for the classifier even from 200 images.
  assert result["transfer"]["palette"]["classifier_accuracy"] > 0.8
  lines = result["table"].splitlines()
  assert lines[0].startswith("Switch transfer: 40 switched images")
  assert lines[2].startswith("label (= shape)")
  with open(os.path.join(trained_workdir, "eval", "switch.json")) as f:
    saved = json.load(f)
  assert saved["transfer"]["palette"] == pytest.approx(
      result["transfer"]["palette"])
  assert saved["rows"] == result["rows"] and "file" in saved
