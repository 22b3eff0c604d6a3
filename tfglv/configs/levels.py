"""The decoder flow's levels, and their checks, per model variant.

Two multi-scale flows can be the decoder (DESIGN sections 4 and 8):

  * the refined Glow of "glvae", "glow" and "glvae_prior_only":
    `model.decoder.num_steps` lists the steps of each level, from full
    resolution down (`schema.DecoderConfig`);
  * the original Glow of "glow_original" (Kingma & Dhariwal, 2018):
    `model.glow_original`, L levels of K steps each at one width, as
    Glow's own code takes them (`--n_levels`, `--depth`, `--width`).

`check_levels` checks the levels of the flow the variant builds; the other
flow's fields are not read.
"""

import dataclasses

from tfglv.configs import checks


@dataclasses.dataclass
class GlowOriginalConfig:
  """The "glow_original" flow (`tfglv.flows.glow_original`).

  Each level squeezes (half the side, 4x the channels), runs K steps
  (ActNorm, invertible 1x1 conv, one affine coupling) and, but the last,
  splits off half its channels; so the image side must be divisible by
  2**num_levels. The couplings' transform, the 1x1 convolutions'
  parameterisation and the networks' compute dtype are `model.decoder`'s
  (`coupling`, `conv1x1`, `compute_dtype`). The defaults are Glow's
  CIFAR-10 model.
  """
  # L, the number of levels.
  num_levels: int = 3
  # K, the Glow steps of every level.
  num_steps: int = 32
  # Width of every coupling network's hidden layers.
  hidden_channels: int = 512


def check_levels(model) -> None:
  """Raises ValueError for levels of `model` (a ModelConfig) that its
  variant's flow cannot build, naming the fix."""
  if model.variant == "glow_original":
    _check_glow_original(model)
  else:
    _check_refined(model)


def _check_glow_original(model):
  glow = model.glow_original
  if glow.num_levels * glow.num_steps > checks.MAX_FLOW_STEPS:
    raise ValueError(
        f"model.glow_original has {glow.num_levels} levels of "
        f"{glow.num_steps} steps, {glow.num_levels * glow.num_steps} Glow "
        f"steps in all; at most {checks.MAX_FLOW_STEPS} are allowed.")
  divisor = 2 ** glow.num_levels
  if model.image_size % divisor:
    fitting = [n for n in range(1, glow.num_levels)
               if model.image_size % 2 ** n == 0]
    fix = (f"use {fitting[-1]} levels (--set model.glow_original.num_levels="
           f"{fitting[-1]}), or " if fitting else "")
    raise ValueError(
        f"image_size {model.image_size} cannot be divided by the "
        f"{glow.num_levels}-level Glow (model.glow_original.num_levels): "
        f"every level halves the image, so it needs a multiple of {divisor}."
        f" Either {fix}resize the images to a multiple of {divisor} (--set "
        f"model.image_size=N with --set data.augmentation=center_crop).")


def _check_refined(model):
  decoder = model.decoder
  levels = decoder.num_steps
  if len(levels) < 2:
    raise ValueError(
        f"model.decoder.num_steps needs at least 2 levels; got {levels}.")
  if len(decoder.hidden_channels) != len(levels):
    raise ValueError(
        f"model.decoder.hidden_channels has {len(decoder.hidden_channels)} "
        f"entries but model.decoder.num_steps has {len(levels)} levels; they "
        f"must match.")
  if not isinstance(levels[0], int) or not isinstance(levels[-1], int):
    raise ValueError(
        f"model.decoder.num_steps: the first and last levels must be ints "
        f"(steps of an external level); got {levels}.")
  for level in levels[1:-1]:
    if not isinstance(level, (list, tuple)) or not level:
      raise ValueError(
          f"model.decoder.num_steps: internal levels must be non-empty lists "
          f"of steps per sub-block; got {levels}.")
    if len(level) >= decoder.num_prior_blocks:
      raise ValueError(
          f"model.decoder.num_steps: an internal level has {len(level)} "
          f"sub-blocks but num_prior_blocks (M) is "
          f"{decoder.num_prior_blocks}; it must be fewer than M.")
  divisor = 2 ** (len(levels) - 1)
  if model.image_size % divisor:
    allowed = ", ".join(str(divisor * k) for k in range(1, 5))
    fewer = max((n for n in range(2, len(levels))
                 if model.image_size % 2 ** (n - 1) == 0), default=None)
    fix = ""
    if fewer:  # Keep the first levels and the last one.
      steps = levels[:fewer - 1] + levels[-1:]
      hidden = (decoder.hidden_channels[:fewer - 1] +
                decoder.hidden_channels[-1:])
      fix = (f"use {fewer} levels (--set 'model.decoder.num_steps="
             f"{steps}' --set 'model.decoder.hidden_channels={hidden}'), or ")
    raise ValueError(
        f"image_size {model.image_size} cannot be divided by the "
        f"{len(levels)}-level multi-scale architecture (needs a multiple of "
        f"{divisor}: {allowed}, ...). Either {fix}resize the images to a "
        f"multiple of {divisor} (--set model.image_size=N with --set "
        f"data.augmentation=center_crop).")
