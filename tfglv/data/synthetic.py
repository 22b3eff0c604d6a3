"""An embedded image dataset with known global factors and local detail.

Every image shows one shape on a background. The *global* factors, kept as
labels, are the shape class and the colour palette (background and foreground
colours). The *local* detail is what a model should put in the local code v:
a stripe texture on the shape, a shading gradient on the background, per-pixel
noise, and a small jitter of the shape's position and size. A model that
separates global from local information should predict `shape` and `palette`
from z, and not from v.

Generation is vectorised numpy driven by one `np.random.RandomState` per
split, so the same (split, size, image_size, channels) always gives the same
bytes, and train and test come from different seeds.

    images = generate(num_examples=4096, image_size=16, channels=3, seed=1)
    images["image"]    # uint8 [N, H, W, C]
    images["shape"]    # int64 [N], index into SHAPE_NAMES (also "label")
    images["palette"]  # int64 [N], index into PALETTES
"""

from typing import Dict, Sequence, Union

import numpy as np

SHAPE_NAMES = ("circle", "square", "triangle", "cross", "ring", "diamond")

# (background RGB, foreground RGB) in [0, 1]. Chosen so that the pairs also
# differ in luminance, which keeps the palette visible in 1-channel images.
PALETTES = (
    ((0.05, 0.05, 0.08), (0.95, 0.95, 0.90)),  # black / white
    ((0.10, 0.12, 0.45), (0.98, 0.85, 0.20)),  # navy / yellow
    ((0.08, 0.35, 0.12), (0.97, 0.60, 0.75)),  # dark green / pink
    ((0.92, 0.92, 0.92), (0.80, 0.10, 0.10)),  # white / red
    ((0.55, 0.78, 0.95), (0.30, 0.18, 0.08)),  # sky blue / dark brown
    ((0.50, 0.50, 0.50), (0.10, 0.95, 0.95)),  # grey / cyan
    ((0.98, 0.55, 0.10), (0.35, 0.10, 0.45)),  # orange / purple
    ((0.40, 0.05, 0.05), (0.60, 0.95, 0.25)),  # dark red / lime
)

# Rendering works on chunks so 64x64 sets do not need N*H*W*C float64 at once;
# the chunk size is fixed so the bytes do not depend on memory.
_CHUNK = 512
_LUMA = np.array([0.299, 0.587, 0.114])


def _signed_distance(shape_id, x, y, radius):
  """Distance to the shape's outline, negative inside.

  Args:
    shape_id: int, index into SHAPE_NAMES.
    x, y: [n, H, W] coordinates relative to each shape's centre.
    radius: [n, 1, 1] size of each shape, same units as x and y.
  """
  name = SHAPE_NAMES[shape_id]
  if name == "circle":
    return np.hypot(x, y) - radius
  if name == "square":
    return np.maximum(np.abs(x), np.abs(y)) - 0.8 * radius
  if name == "triangle":
    # Upward equilateral triangle as the intersection of three half-planes.
    k = np.sqrt(3.0)
    edges = [(y - 0.5 * radius),
             (-k * x - y) / 2.0 - 0.5 * radius,
             (k * x - y) / 2.0 - 0.5 * radius]
    return np.maximum.reduce(edges) * 1.3
  if name == "cross":
    arm, half_width = radius, 0.3 * radius
    bar_h = np.maximum(np.abs(x) - arm, np.abs(y) - half_width)
    bar_v = np.maximum(np.abs(x) - half_width, np.abs(y) - arm)
    return np.minimum(bar_h, bar_v)
  if name == "ring":
    return np.abs(np.hypot(x, y) - 0.7 * radius) - 0.3 * radius
  if name == "diamond":
    return (np.abs(x) + np.abs(y)) / np.sqrt(2.0) - 0.75 * radius
  raise AssertionError(name)


def _palette_colours(channels: int) -> np.ndarray:
  """[num_palettes, 2, channels] background/foreground colours."""
  colours = np.asarray(PALETTES, dtype=np.float64)
  if channels == 3:
    return colours
  luma = colours @ _LUMA  # [P, 2]
  return np.repeat(luma[..., None], channels, axis=-1)


def generate(num_examples: int, image_size: int, channels: int,
             seed: Union[int, Sequence[int]]) -> Dict[str, np.ndarray]:
  """Renders `num_examples` images; deterministic given all arguments.

  Args:
    num_examples: N >= 1.
    image_size: side of the square images, >= 8.
    channels: 1 (grey) or 3 (RGB); other counts repeat the grey value.
    seed: int or ints seeding the RandomState that draws every factor and
      all noise.

  Returns:
    dict with "image" uint8 [N, H, W, C], and int64 [N] "label" (== "shape"),
    "shape" and "palette".
  """
  if num_examples < 1:
    raise ValueError(f"synthetic dataset needs num_examples >= 1; got "
                     f"{num_examples} (set data.synthetic_size).")
  if image_size < 8:
    raise ValueError(f"synthetic images need image_size >= 8; got "
                     f"{image_size}.")
  if channels < 1:
    raise ValueError(f"channels must be >= 1; got {channels}.")
  rs = np.random.RandomState(seed)
  n = num_examples
  # Global factors. Shapes cycle through a permutation so classes are
  # balanced to within one image; palettes are independent of shapes.
  shape = rs.permutation(np.arange(n) % len(SHAPE_NAMES)).astype(np.int64)
  palette = rs.randint(0, len(PALETTES), size=n).astype(np.int64)
  # Local detail: jitter of position/size, texture and shading parameters.
  centre = rs.uniform(-0.12, 0.12, size=(n, 2))
  radius = rs.uniform(0.50, 0.62, size=n)
  stripe_freq = rs.uniform(1.5, 0.2 * image_size, size=n)  # cycles per image
  stripe_angle = rs.uniform(0.0, np.pi, size=n)
  stripe_phase = rs.uniform(0.0, 2 * np.pi, size=n)
  stripe_amp = rs.uniform(0.08, 0.22, size=n)
  shade_angle = rs.uniform(0.0, 2 * np.pi, size=n)
  shade_amp = rs.uniform(0.0, 0.15, size=n)

  colours = _palette_colours(channels).astype(np.float32)
  # Pixel centres in [-1, 1]; one pixel is 2 / image_size wide.
  axis = ((np.arange(image_size) + 0.5) / image_size * 2.0 - 1.0).astype(
      np.float32)
  grid_y, grid_x = np.meshgrid(axis, axis, indexing="ij")
  images = np.empty((n, image_size, image_size, channels), np.uint8)
  for start in range(0, n, _CHUNK):
    part = slice(start, min(start + _CHUNK, n))
    m = part.stop - part.start
    x = grid_x[None] - centre[part, 0, None, None].astype(np.float32)
    y = grid_y[None] - centre[part, 1, None, None].astype(np.float32)
    distance = np.empty((m, image_size, image_size), np.float32)
    for shape_id in range(len(SHAPE_NAMES)):
      chosen = shape[part] == shape_id
      if chosen.any():
        distance[chosen] = _signed_distance(
            shape_id, x[chosen], y[chosen],
            radius[part][chosen, None, None].astype(np.float32))
    # One-pixel anti-aliased edge.
    mask = np.clip(0.5 - distance * image_size / 2.0, 0.0, 1.0)[..., None]

    def per_image(values):
      return values[part, None, None].astype(np.float32)

    along = (grid_x[None] * np.cos(per_image(stripe_angle)) +
             grid_y[None] * np.sin(per_image(stripe_angle)))
    stripes = 1.0 + per_image(stripe_amp) * np.sin(
        np.pi * per_image(stripe_freq) * along + per_image(stripe_phase))
    shade = 1.0 + per_image(shade_amp) * (
        grid_x[None] * np.cos(per_image(shade_angle)) +
        grid_y[None] * np.sin(per_image(shade_angle)))
    background = colours[palette[part], 0][:, None, None, :]
    foreground = colours[palette[part], 1][:, None, None, :]
    pixels = (background * shade[..., None] * (1.0 - mask) +
              foreground * stripes[..., None] * mask)
    # Triangular noise (difference of two uniform bytes, std ~ 0.029) is
    # drawn as uint8, several times faster than normal draws at 64x64.
    noise_a = rs.randint(0, 256, size=pixels.shape, dtype=np.uint8)
    noise_b = rs.randint(0, 256, size=pixels.shape, dtype=np.uint8)
    pixels += (noise_a.astype(np.float32) - noise_b) * (0.07 / 255.0)
    images[part] = np.clip(np.round(pixels * 255.0), 0, 255).astype(np.uint8)
  return {"image": images, "label": shape.copy(), "shape": shape,
          "palette": palette}
