"""The figures (samples, reconstructions, switch, interpolation) of a tiny
run trained for a few steps (see tests/evaluation/conftest.py): their files,
the shapes of their grids, and agreement with direct model calls.
"""

import os

import numpy as np
import pytest

import evaluation_testlib
from tfglv import data
from tfglv.evaluation import figures
from tfglv.evaluation import representations

SIZE = evaluation_testlib.SIZE
PAD = evaluation_testlib.PAD
_png = evaluation_testlib.png
_cell = evaluation_testlib.cell
_grid_part = evaluation_testlib.grid_part


def test_sample_grids_per_temperature(run):
  result = figures.write_samples(run, temperatures=(0.5, 1.0), num_images=6,
                                 seed=3, batch_size=4)
  assert sorted(os.path.basename(p) for p in result["files"].values()) == [
      "samples_t0.5.png", "samples_t1.0.png"]
  grids = {t: _grid_part(_png(p), 1, 6) for t, p in result["files"].items()}
  assert not np.array_equal(grids["0.5"], grids["1.0"])
  expected = representations.sample_in_batches(run.model, 6, 0.5, seed=3,
                                               batch_size=4)
  for index in range(6):
    np.testing.assert_array_equal(_cell(grids["0.5"], 0, index),
                                  expected[index])


def test_row_blocks_keep_related_images_in_one_column():
  first = np.full((10, 4, 4, 1), 1, np.uint8) * np.arange(10, dtype=np.uint8
                                                          )[:, None, None, None]
  second = first + 100
  figure = figures._pair_rows([first, second], 1, ["first", "second"],  # pylint: disable=protected-access
                              "title")
  # Two blocks of 8 columns: rows (first 0-7, second 0-7, first 8-9, ...).
  grid = _grid_part(figure, 4, 8, size=4, labelled_rows=True)
  assert _cell(grid, 1, 5, size=4)[0, 0, 0] == 105
  assert _cell(grid, 2, 1, size=4)[0, 0, 0] == 9
  assert _cell(grid, 3, 1, size=4)[0, 0, 0] == 109
  assert np.all(_cell(grid, 3, 2, size=4) == 255)  # padding cell


def test_reconstructions_are_exact(run):
  result = figures.write_reconstructions(run, "test", num_images=4)
  assert result["num_exact"] == 4 and result["max_abs_difference"] == 0
  grid = _grid_part(_png(result["file"]), 2, 4, labelled_rows=True)
  originals, _ = data.load_arrays(run.config, "test", max_examples=4)
  for index in range(4):
    np.testing.assert_array_equal(_cell(grid, 0, index), originals[index])
    np.testing.assert_array_equal(_cell(grid, 1, index), originals[index])


def test_switch_grid_swaps_global_codes(run):
  result = figures.write_switch_grid(run, "test", num_pairs=3, batch_size=2)
  assert result["rows"] == list(figures.SWITCH_ROWS)
  grid = _grid_part(_png(result["file"]), 4, 3, labelled_rows=True)
  images, _ = data.load_arrays(run.config, "test", max_examples=6)
  z, _, v = run.model.encode(images)
  expected = {1: run.model.decode(z[3:], v[:3]).numpy(),   # (z_b, v_a)
              2: run.model.decode(z[:3], v[3:]).numpy()}   # (z_a, v_b)
  for pair in range(3):
    np.testing.assert_array_equal(_cell(grid, 0, pair), images[pair])
    np.testing.assert_array_equal(_cell(grid, 3, pair), images[3 + pair])
    for row, switched in expected.items():
      np.testing.assert_array_equal(_cell(grid, row, pair), switched[pair])
  # The figures that replace "fraction_changed_by_switch" are
  # switch_score's; the grid reports how far switches move from each donor.
  assert "fraction_changed_by_switch" not in result
  with_v_a = expected[1].astype(np.int16)
  assert result["mean_abs_difference_to_own_v_image"] == pytest.approx(
      np.mean(np.abs(with_v_a - images[:3])))
  assert result["mean_abs_difference_to_z_image"] == pytest.approx(
      np.mean(np.abs(with_v_a - images[3:6])))


def test_interpolation_grid_follows_the_paper_footnote(run):
  assert representations.INTERPOLATION_ALPHAS == (0.0, 0.25, 0.5, 0.75, 1.0)
  assert representations.INTERPOLATION_BETAS == (
      0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
  result = figures.write_interpolation_grids(run, "test",
                                             num_interpolations=1)
  assert result["corners_exact"]
  grid = _grid_part(_png(result["files"][0]), 5, 11, labelled_rows=True)
  images, _ = data.load_arrays(run.config, "test", max_examples=2)
  z, _, v = run.model.encode(images)
  np.testing.assert_array_equal(_cell(grid, 0, 0), images[0])
  np.testing.assert_array_equal(_cell(grid, 4, 10), images[1])
  # (alpha, beta) = (1, 0) is a switch; (0.5, 0.3) a linear mixture.
  np.testing.assert_array_equal(
      _cell(grid, 4, 0), run.model.decode(z[1:], v[:1]).numpy()[0])
  mixed = run.model.decode(0.5 * z[:1] + 0.5 * z[1:],
                           0.7 * v[:1] + 0.3 * v[1:]).numpy()[0]
  difference = np.abs(_cell(grid, 2, 3).astype(int) - mixed)
  assert difference.max() <= 1  # float32 mixing order may round differently
