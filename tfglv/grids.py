"""Image grids: samples, reconstructions, switches, 2-D interpolations.

Training (its sample and reconstruction PNGs) and evaluation (the paper's
Figs 4-5) tile images the same way, so the grids live here, below both;
this module imports nothing from tfglv.

`image_grid` tiles N images row-major into a rows x cols grid with
`padding` pixels of `pad_value` between the cells and around the border:

    height = rows * H + (rows + 1) * padding
    width  = cols * W + (cols + 1) * padding

Cells after the N-th stay filled with `pad_value`. `square_grid` picks a
near-square shape (cols = ceil(sqrt(N))); `rows_grid` stacks equal-length
rows, e.g. originals over their reconstructions.

So that a person can see them, images are enlarged (nearest neighbour,
each pixel a `scale` x `scale` block) before tiling: by default (`scale`
0) to cells of at least `MIN_CELL_PIXELS` (96) pixels, e.g. 6x for 16x16
images, 3x for 32x32, 1x from 96x96 up; H and W above are the enlarged
sizes.
"""

import math
import os
from typing import Optional, Sequence, Tuple

import numpy as np
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont
import tensorflow as tf

PNG_CHANNELS = (1, 3, 4)
MIN_CELL_PIXELS = 96


def cell_scale(height: int, width: int, scale: int = 0) -> int:
  """The enlargement of H x W cells: `scale`, or for 0 the smallest one
  that makes both sides at least `MIN_CELL_PIXELS`."""
  if not isinstance(scale, (int, np.integer)) or scale < 0:
    raise ValueError(f"figure scale must be an integer >= 0 (0: cells of at "
                     f"least {MIN_CELL_PIXELS} px); got {scale!r}.")
  if scale:
    return int(scale)
  return max(1, math.ceil(MIN_CELL_PIXELS / max(1, min(height, width))))


def image_grid(images, rows: int, cols: int, padding: int = 2,
               pad_value: int = 255, scale: int = 0,
               row_labels: Optional[Sequence[str]] = None,
               column_labels: Optional[Sequence[str]] = None,
               title: Optional[str] = None) -> np.ndarray:
  """Tiles uint8 `images` [N, H, W, C] into one uint8 image [h, w, C].

  Image i lands in row i // cols, column i % cols; N may be smaller than
  rows * cols but not larger. Each image is first enlarged `cell_scale`
  times (nearest neighbour; `scale` 0: cells of >= 96 px). Labels (see the
  module docstring) add white margins.
  """
  images = np.asarray(images)
  if images.ndim != 4 or images.dtype != np.uint8:
    raise ValueError(f"images must be uint8 [N, H, W, C]; got dtype "
                     f"{images.dtype} and shape {images.shape}.")
  factor = cell_scale(images.shape[1], images.shape[2], scale)
  images = images.repeat(factor, axis=1).repeat(factor, axis=2)
  if rows < 1 or cols < 1:
    raise ValueError(f"rows and cols must be >= 1; got rows={rows}, "
                     f"cols={cols}.")
  num_images, height, width, channels = images.shape
  if num_images > rows * cols:
    raise ValueError(f"{num_images} images do not fit a {rows} x {cols} "
                     f"grid ({rows * cols} cells).")
  if padding < 0:
    raise ValueError(f"padding must be >= 0; got {padding}.")
  if not 0 <= pad_value <= 255:
    raise ValueError(f"pad_value must be in [0, 255]; got {pad_value}.")
  grid = np.full((rows * height + (rows + 1) * padding,
                  cols * width + (cols + 1) * padding, channels),
                 pad_value, dtype=np.uint8)
  for index in range(num_images):
    top = padding + (index // cols) * (height + padding)
    left = padding + (index % cols) * (width + padding)
    grid[top:top + height, left:left + width] = images[index]
  if row_labels is None and column_labels is None and title is None:
    return grid
  return _labelled(grid, rows, cols, height, width, padding, row_labels,
                   column_labels, title)


def _font_size(cell_height: int) -> int:
  return int(np.clip(cell_height // 6, 10, 16))


def _labelled(grid, rows, cols, height, width, padding, row_labels,
              column_labels, title) -> np.ndarray:
  """`grid` with its labels on white margins (left, top)."""
  for name, labels, count in (("row_labels", row_labels, rows),
                              ("column_labels", column_labels, cols)):
    if labels is not None and len(labels) != count:
      raise ValueError(f"{name} must have one label per {name[:-7]} "
                       f"({count}); got {len(labels)}.")
  font = ImageFont.load_default(size=_font_size(height))
  ascent, descent = font.getmetrics()
  line = ascent + descent + 2 * padding
  left = 0
  if row_labels is not None:
    left = int(max(font.getlength(str(t)) for t in row_labels)) + 4 * padding
  top = line * ((column_labels is not None) + (title is not None))
  canvas = Image.new("L", (grid.shape[1] + left, grid.shape[0] + top), 255)
  draw = ImageDraw.Draw(canvas)
  if title is not None:
    draw.text((left + padding, padding), str(title), fill=0, font=font)
  if column_labels is not None:
    y = top - line + padding
    for col, text in enumerate(column_labels):
      x = left + padding + col * (width + padding) + width / 2
      draw.text((x, y), str(text), fill=0, font=font, anchor="ma")
  if row_labels is not None:
    for row, text in enumerate(row_labels):
      y = top + padding + row * (height + padding) + height / 2
      draw.text((left - 2 * padding, y), str(text), fill=0, font=font,
                anchor="rm")
  out = np.repeat(np.asarray(canvas)[..., None], grid.shape[-1], axis=-1)
  if grid.shape[-1] in (2, 4):
    out[..., -1] = 255  # Opaque labels on an alpha channel.
  out[top:, left:] = grid
  return out


def grid_shape(count: int) -> Tuple[int, int]:
  """(rows, cols) of a near-square grid of `count` cells."""
  cols = int(math.ceil(math.sqrt(count)))
  return int(math.ceil(count / cols)), cols


def square_grid(images, scale: int = 0,
                title: Optional[str] = None) -> np.ndarray:
  """uint8 [N, H, W, C] -> one near-square uint8 grid image."""
  images = np.asarray(images)
  rows, cols = grid_shape(len(images))
  return image_grid(images, rows, cols, scale=scale, title=title)


def rows_grid(rows_of_images: Sequence, scale: int = 0,
              row_labels: Optional[Sequence[str]] = None,
              title: Optional[str] = None) -> np.ndarray:
  """Stacks equal-length rows of uint8 images [N, H, W, C] into one grid."""
  images = np.concatenate([np.asarray(r) for r in rows_of_images])
  return image_grid(images, len(rows_of_images), len(rows_of_images[0]),
                    scale=scale, row_labels=row_labels, title=title)


def save_png(path: str, image) -> None:
  """Writes uint8 `image` [h, w, C] (C in 1, 3, 4) as a PNG; makes parents.

  Goes through tf.io.gfile, so `path` may also be a GCS/HDFS URL.
  """
  image = np.asarray(image)
  if (image.ndim != 3 or image.dtype != np.uint8
      or image.shape[-1] not in PNG_CHANNELS):
    raise ValueError(f"image must be uint8 [h, w, C] with C in "
                     f"{PNG_CHANNELS}; got dtype {image.dtype} and shape "
                     f"{image.shape}.")
  directory = os.path.dirname(path)
  if directory:
    tf.io.gfile.makedirs(directory)
  with tf.io.gfile.GFile(path, "wb") as png_file:
    png_file.write(tf.io.encode_png(image).numpy())
