"""Tests of tfglv.grids: image grids and PNGs."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tfglv import grids


@pytest.mark.parametrize("count, shape", [
    (1, (1, 1)), (2, (1, 2)), (3, (2, 2)), (8, (3, 3)), (16, (4, 4)),
    (17, (4, 5))])
def test_grid_shape_is_near_square(count, shape):
  assert grids.grid_shape(count) == shape


def test_square_grid_places_images_row_major():
  images = np.arange(5, dtype=np.uint8).reshape(5, 1, 1, 1) * 10
  grid = grids.square_grid(images, scale=1)
  # 5 images: 2 rows of 3 cells, 1-pixel images, 2-pixel padding.
  assert grid.shape == (2 * 1 + 3 * 2, 3 * 1 + 4 * 2, 1)
  assert [grid[2, 2, 0], grid[2, 5, 0], grid[2, 8, 0], grid[5, 2, 0],
          grid[5, 5, 0], grid[5, 8, 0]] == [0, 10, 20, 30, 40, 255]


def test_rows_grid_stacks_rows():
  rows = [np.full((4, 2, 2, 3), value, np.uint8) for value in (1, 2, 3)]
  grid = grids.rows_grid(rows, scale=1)
  assert grid.shape == (3 * 2 + 4 * 2, 4 * 2 + 5 * 2, 3)
  assert [grid[2 + 4 * row, 2, 0] for row in range(3)] == [1, 2, 3]
  with pytest.raises(ValueError, match="do not fit a 2 x 4 grid"):
    grids.rows_grid([rows[0], np.concatenate(rows[1:])], scale=1)


def test_image_grid_shape_and_placement():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 200, (5, 4, 3, 1), dtype=np.uint8)
  grid = grids.image_grid(images, rows=2, cols=3, padding=2, pad_value=255,
                          scale=1)
  assert grid.shape == (2 * 4 + 3 * 2, 3 * 3 + 4 * 2, 1)
  assert grid.dtype == np.uint8
  mask = np.ones(grid.shape[:2], bool)
  for index in range(5):
    top, left = 2 + (index // 3) * 6, 2 + (index % 3) * 5
    np.testing.assert_array_equal(grid[top:top + 4, left:left + 3],
                                  images[index])
    mask[top:top + 4, left:left + 3] = False
  # Padding and the sixth (empty) cell hold pad_value only.
  assert np.all(grid[mask] == 255)


def test_image_grid_without_padding_is_a_block_reshape():
  images = np.random.default_rng(1).integers(0, 256, (6, 5, 4, 3),
                                             dtype=np.uint8)
  grid = grids.image_grid(images, rows=2, cols=3, padding=0, scale=1)
  expected = images.reshape(2, 3, 5, 4, 3).transpose(0, 2, 1, 3, 4).reshape(
      10, 12, 3)
  np.testing.assert_array_equal(grid, expected)


def test_image_grid_validates():
  images = np.zeros((7, 2, 2, 3), np.uint8)
  with pytest.raises(ValueError, match="do not fit"):
    grids.image_grid(images, rows=2, cols=3)
  with pytest.raises(ValueError, match="uint8"):
    grids.image_grid(images.astype(np.float32), rows=3, cols=3)
  with pytest.raises(ValueError, match="pad_value"):
    grids.image_grid(images, rows=3, cols=3, pad_value=256)


def test_save_png_round_trips_and_makes_directories(tmp_path):
  grid = grids.image_grid(
      np.random.default_rng(2).integers(0, 256, (4, 3, 3, 1), np.uint8),
      rows=2, cols=2)
  path = os.path.join(str(tmp_path), "nested", "dir", "grid.png")
  grids.save_png(path, grid)
  decoded = tf.io.decode_png(tf.io.read_file(path), channels=0).numpy()
  np.testing.assert_array_equal(decoded, grid)
  with pytest.raises(ValueError, match="C in"):
    grids.save_png(path, np.zeros((2, 2, 2), np.uint8))


@pytest.mark.parametrize("side,factor", [(1, 96), (16, 6), (28, 4),
                                         (32, 3), (96, 1), (256, 1)])
def test_cells_are_enlarged_to_at_least_96_pixels(side, factor):
  assert grids.cell_scale(side, side) == factor
  assert side * factor >= grids.MIN_CELL_PIXELS or side >= 96


def test_enlargement_is_nearest_neighbour_and_can_be_chosen():
  images = np.random.default_rng(3).integers(0, 256, (4, 16, 16, 1),
                                             np.uint8)
  grid = grids.square_grid(images)  # 16 px -> 6x: 96 px cells.
  assert grid.shape == (2 * 96 + 3 * 2, 2 * 96 + 3 * 2, 1)
  cell = grid[2:98, 2:98]
  np.testing.assert_array_equal(cell[::6, ::6], images[0])
  np.testing.assert_array_equal(cell, images[0].repeat(6, 0).repeat(6, 1))
  assert grids.square_grid(images, scale=2).shape == (70, 70, 1)
  with pytest.raises(ValueError, match="figure scale must be an integer >= "
                     "0"):
    grids.square_grid(images, scale=-1)


def test_labels_sit_on_margins_and_leave_the_cells_alone():
  images = np.arange(6 * 4 * 4 * 3, dtype=np.uint8).reshape(6, 4, 4, 3)
  bare = grids.image_grid(images, 2, 3, scale=1)
  labelled = grids.image_grid(images, 2, 3, scale=1, title="title",
                              row_labels=["first row", "second row"],
                              column_labels=["a", "b", "c"])
  height, width = bare.shape[:2]
  assert labelled.shape[0] > height and labelled.shape[1] > width
  np.testing.assert_array_equal(labelled[-height:, -width:], bare)
  # Black text on the white margins, left and above.
  assert labelled[:, :-width].min() < 64
  assert labelled[:-height, -width:].min() < 64
  only_title = grids.image_grid(images, 2, 3, scale=1, title="t")
  assert only_title.shape[1] == width  # No row labels, no left margin.


def test_labels_keep_the_channels_and_an_opaque_alpha():
  for channels in (1, 4):
    images = np.zeros((2, 4, 4, channels), np.uint8)
    figure = grids.image_grid(images, 1, 2, scale=1, row_labels=["row"])
    assert figure.shape[-1] == channels
    if channels == 4:
      assert np.all(figure[..., 3][:, :5] == 255)


def test_a_label_count_that_does_not_match_is_named():
  images = np.zeros((4, 4, 4, 1), np.uint8)
  with pytest.raises(ValueError, match=r"row_labels must have one label per "
                                       r"row \(2\); got 3"):
    grids.image_grid(images, 2, 2, row_labels=["a", "b", "c"])
  with pytest.raises(ValueError, match=r"column_labels .* column \(2\); got 1"):
    grids.image_grid(images, 2, 2, column_labels=["a"])
