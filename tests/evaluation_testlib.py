"""Shared by the evaluation tests: the tiny run they evaluate, and PNG grids.

The run is the `tiny` config on the embedded synthetic dataset, trained for
3 steps by the real trainer (tests/evaluation/conftest.py trains it once
per pytest process).
"""

import numpy as np
import tensorflow as tf

import tfglv

SIZE = 16  # tiny's image_size
PAD = 2  # grids.image_grid's default padding


def tiny_config():
  return tfglv.configs.override(tfglv.configs.get("tiny"), {
      "data.synthetic_size": "512",  # test split: 64 images
      "train.batch_size": "16", "train.num_steps": "3",
      "train.log_every": "1", "train.checkpoint_every": "3",
      "train.eval_every": "3", "train.eval_batches": "1",
      "train.sample_every": "3", "train.init_batch_size": "64",
      "train.strategy": "one_device"})


def png(path: str) -> np.ndarray:
  """The uint8 [h, w, C] pixels of a PNG file."""
  return tf.io.decode_png(tf.io.read_file(path)).numpy()


def grid_part(figure: np.ndarray, rows: int, columns: int, size: int = SIZE,
              labelled_rows: bool = False) -> np.ndarray:
  """The cells of a figure whose labels sit on its top and left margins.

  Checks that the figure has a title or column labels above the grid, and
  row labels left of it exactly when `labelled_rows`.
  """
  height = rows * size + (rows + 1) * PAD
  width = columns * size + (columns + 1) * PAD
  assert figure.shape[0] > height, (figure.shape, height)  # A title.
  assert (figure.shape[1] > width) == labelled_rows, (figure.shape, width)
  assert figure.shape[1] >= width
  # The margins hold dark text.
  assert figure[:-height].min() < 128
  return figure[-height:, -width:]


def cell(grid: np.ndarray, row: int, column: int, size: int = SIZE
         ) -> np.ndarray:
  """The image in cell (row, column) of a grid of size x size images."""
  top = PAD + row * (size + PAD)
  left = PAD + column * (size + PAD)
  return grid[top:top + size, left:left + size]
