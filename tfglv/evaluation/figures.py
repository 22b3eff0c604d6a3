"""Figures of a trained run: samples, reconstructions, switch, interpolation.

Each writer saves PNG grids (and a JSON of what it checked) into
`<workdir>/eval/` and returns a dict of file paths and numbers. Grids keep
related images one above the other, in blocks of up to 8 columns.
"""

import math
from typing import Dict, Sequence

import numpy as np

from tfglv import grids
from tfglv.data import sources
from tfglv.evaluation import representations
from tfglv.evaluation import runs

# Switch grid rows, top to bottom: each switched image sits next to the real
# image whose local code v it keeps.
SWITCH_ROWS = ("x_a", "decode(z_b, v_a)", "decode(z_a, v_b)", "x_b")
_GRID_COLUMNS = 8


def _grid_columns(count: int) -> int:
  return min(count, _GRID_COLUMNS)


def _temperature_name(temperature: float) -> str:
  # str() keeps "1.0" (the trainer's samples_t1.0.png) and "0.75".
  return f"samples_t{float(temperature)}.png"


def write_samples(run: runs.EvaluationRun,
                  temperatures: Sequence[float] = (
                      representations.SAMPLE_TEMPERATURES),
                  num_images: int = 64, seed: int = 0,
                  batch_size: int = 64) -> Dict:
  """One grid of `num_images` samples per temperature of v (DESIGN §6).

  Every grid uses the same seed, so the same z and the same unit-variance
  noise scaled by each temperature: the grids differ only in temperature.
  """
  temperatures = representations.check_temperatures(temperatures)
  runs.check_count("num_images", num_images)
  columns = _grid_columns(num_images)
  rows = math.ceil(num_images / columns)
  files = {}
  for temperature in temperatures:
    images = representations.sample_in_batches(
        run.model, num_images, temperature=temperature, seed=seed,
        batch_size=batch_size)
    files[str(temperature)] = run.write_png(
        _temperature_name(temperature),
        grids.image_grid(images, rows, columns, scale=run.figure_scale,
                         title=f"samples, temperature {temperature} "
                               f"(seed {seed})"))
  return {"temperatures": list(temperatures), "num_images": num_images,
          "grid": [rows, columns], "seed": seed, "files": files}


def _pair_rows(image_rows: Sequence[np.ndarray], scale: int,
               labels: Sequence[str], title: str) -> np.ndarray:
  """Row blocks of up to 8 columns: block b stacks column slice b of every
  row of images, so related images stay one above the other; each row is
  labelled with what it shows."""
  count = len(image_rows[0])
  columns = _grid_columns(count)
  cells = []
  for start in range(0, count, columns):
    for images in image_rows:
      block = images[start:start + columns]
      padding = np.full((columns - len(block),) + block.shape[1:], 255,
                        np.uint8)
      cells.append(np.concatenate([block, padding]))
  cells = np.concatenate(cells)
  rows = len(cells) // columns
  return grids.image_grid(cells, rows, columns, scale=scale,
                          row_labels=list(labels) * (rows // len(labels)),
                          title=title)


def write_reconstructions(run: runs.EvaluationRun, split: str = "test",
                          num_images: int = 16, batch_size: int = 64) -> Dict:
  """Originals above decode(encode(x)); reports how exact the round trip is.

  For these models the round trip is exact by construction (x is recovered
  from v and z), so "num_exact" == "num_images" and "max_abs_difference" ==
  0 check the trained decoder numerically.
  """
  sources.check_split(split)
  runs.check_count("num_images", num_images)
  originals = runs.load_images(run, split, num_images, what="reconstructions")
  z, v = representations.encode_in_batches(run.model, originals, batch_size)
  reconstructed = representations.decode_in_batches(run.model, z, v,
                                                    batch_size)
  difference = np.abs(originals.astype(np.int16) -
                      reconstructed.astype(np.int16))
  # An n_bits < 8 model reconstructs the image on its own grid.
  shift = 8 - run.config.model.n_bits
  expected = (originals >> shift) << shift
  rows = ["x", "decode(encode(x))"]
  result = {
      "split": split, "num_images": len(originals),
      "num_exact": int(np.sum(np.all(reconstructed == expected,
                                     axis=(1, 2, 3)))),
      "max_abs_difference": int(difference.max()),
      "mean_abs_difference": float(difference.mean()),
      "rows": rows,
  }
  result["file"] = run.write_png(
      "reconstructions.png",
      _pair_rows([originals, reconstructed], run.figure_scale, rows,
                 f"reconstructions ({split} split)"))
  run.write_json("reconstructions.json", result)
  return result


def write_switch_grid(run: runs.EvaluationRun, split: str = "test",
                      num_pairs: int = 8, batch_size: int = 64) -> Dict:
  """Swaps z between pairs of real images (paper Figure 1).

  Pair i is (image i, image num_pairs + i) of the split. Rows, top to
  bottom, per block of up to 8 pairs: SWITCH_ROWS. Which factors follow
  which code is `switch_score`'s (the switch task runs both). Raises
  ValueError for a run without a global code ("glow").
  """
  runs.check_global_code(run, "switch")
  sources.check_split(split)
  runs.check_count("num_pairs", num_pairs)
  images = runs.load_images(run, split, 2 * num_pairs, minimum=2 * num_pairs,
                            what=f"A switch grid of {num_pairs} pairs")
  images_a, images_b = images[:num_pairs], images[num_pairs:]
  with_v_a, with_v_b = representations.switch(run.model, images_a, images_b,
                                              batch_size)
  result = {
      "split": split, "num_pairs": num_pairs, "rows": list(SWITCH_ROWS),
      # Mean |switched - image whose v it keeps| and |... - partner|, in
      # pixel levels: small first numbers mean v dominates the appearance.
      "mean_abs_difference_to_own_v_image": float(np.mean(np.abs(
          with_v_a.astype(np.int16) - images_a))),
      "mean_abs_difference_to_z_image": float(np.mean(np.abs(
          with_v_a.astype(np.int16) - images_b))),
  }
  result["file"] = run.write_png(
      "switch.png", _pair_rows([images_a, with_v_a, with_v_b, images_b],
                               run.figure_scale, SWITCH_ROWS,
                               f"z swapped between pairs ({split} split)"))
  run.write_json("switch.json", result)
  return result


def write_interpolation_grids(run: runs.EvaluationRun, split: str = "test",
                              num_interpolations: int = 2) -> Dict:
  """2-D interpolation grids (paper Figure 5): z down, v across.

  Grid i interpolates between images 2i and 2i + 1 of the split; its rows
  are representations.INTERPOLATION_ALPHAS (weight of z_2) and its columns
  INTERPOLATION_BETAS (weight of v_2).
  """
  sources.check_split(split)
  runs.check_count("num_interpolations", num_interpolations)
  images = runs.load_images(run, split, 2 * num_interpolations,
                            minimum=2 * num_interpolations,
                            what=f"{num_interpolations} interpolation grids")
  alphas = representations.INTERPOLATION_ALPHAS
  betas = representations.INTERPOLATION_BETAS
  files = []
  corners_exact = True
  for index in range(num_interpolations):
    image_1, image_2 = images[2 * index], images[2 * index + 1]
    cells = representations.interpolate(run.model, image_1, image_2, alphas,
                                        betas)
    corners_exact &= bool(np.array_equal(cells[0, 0], image_1) and
                          np.array_equal(cells[-1, -1], image_2))
    flat = cells.reshape((-1,) + cells.shape[2:])
    files.append(run.write_png(f"interpolation_{index}.png", grids.image_grid(
        flat, len(alphas), len(betas), scale=run.figure_scale,
        row_labels=[f"z: {a:g}" for a in alphas],
        column_labels=[f"v: {b:g}" for b in betas],
        title=f"from A ({split} image {2 * index}) to B (image "
              f"{2 * index + 1}): weight of B's z down, of B's v across")))
  result = {"split": split, "alphas": list(alphas), "betas": list(betas),
            "row_weight": "alpha (z)", "column_weight": "beta (v)",
            "corners_exact": corners_exact, "files": files}
  run.write_json("interpolation.json", result)
  return result
