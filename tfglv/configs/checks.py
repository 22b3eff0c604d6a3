"""Types and bounds of config values.

A `--set` value and every value of a `config.json` are user input: a run
directory's config can be hand-edited or damaged. Two checks stop bad
values with a ValueError that names the field, instead of a TypeError deep
in the model or an allocation that never finishes:

* `check_types` runs wherever a config is made (`from_dict`, `override`,
  `validate`): `"image_size": "16"`, `"n_bits": [8]` or `hidden_channels`
  `[8, "x", 16]` name the field, the expected type and the value.
* `check_model_bounds` and `check_bounds` run in `validate`: every
  size-like field has a ceiling far above the paper's configs (DESIGN
  sections 2-5), and a batch or an in-memory dataset may hold only so many
  pixel values, so an absurd size (`train.init_batch_size=1000000000`)
  stops before anything is allocated.
"""

import dataclasses
import math
import numbers
import typing

# The ceilings; the paper's largest value is in each comment.
MAX_IMAGE_SIZE = 2048  # pixels per side (256)
MAX_CHANNELS = 64  # (3)
MAX_LATENT_DIM = 8192  # (256)
MAX_WIDTH = 4096  # every hidden width and encoder level (512)
MAX_FLOW_STEPS = 1024  # Glow steps of the decoder in all (92)
MAX_PRIOR_STEPS = 256  # (2)
MAX_PRIOR_BLOCKS = 64  # M (4)
MAX_POSTERIOR_SAMPLES = 256  # (5)
MAX_SYNTHETIC_IMAGES = 2 ** 24  # (4096)
MAX_SHUFFLE_BUFFER = 2 ** 20  # encoded images (10000)
# Pixel values (N x H x W x C) of one training step's batch, tiled once per
# posterior sample, and of the data-dependent init batch: 1 GiB as uint8,
# 4 GiB as the float32 the flow computes in (a cifar10 step: 1.6M).
MAX_BATCH_VALUES = 2 ** 30
# Pixel values of the synthetic training set, which is held in memory.
MAX_SYNTHETIC_VALUES = 2 ** 31
# The side of one enlarged image in the sample PNGs.
MAX_CELL_PIXELS = 2048
# Every other integer field (steps are counted in int32 by the trainer's
# noise seeds); the seed may be any integer.
MAX_INTEGER = 2 ** 31 - 1
_UNBOUNDED = ("train.seed",)

# field: (lowest or None when checked elsewhere, highest).
_SCALAR_BOUNDS = {
    "model.image_size": (1, MAX_IMAGE_SIZE),
    "model.channels": (None, MAX_CHANNELS),
    "model.latent_dim": (None, MAX_LATENT_DIM),
    "model.encoder.out_channels": (1, MAX_WIDTH),
    "model.prior.num_steps": (1, MAX_PRIOR_STEPS),
    "model.prior.hidden_units": (1, MAX_WIDTH),
    "model.decoder.num_prior_blocks": (1, MAX_PRIOR_BLOCKS),
    # Each level halves the image.
    "model.glow_original.num_levels": (1, MAX_IMAGE_SIZE.bit_length() - 1),
    "model.glow_original.num_steps": (1, MAX_FLOW_STEPS),
    "model.glow_original.hidden_channels": (1, MAX_WIDTH),
    "data.synthetic_size": (1, MAX_SYNTHETIC_IMAGES),
    "data.shuffle_buffer": (1, MAX_SHUFFLE_BUFFER),
    "train.num_posterior_samples": (None, MAX_POSTERIOR_SAMPLES),
    "train.eval_posterior_samples": (None, MAX_POSTERIOR_SAMPLES),
    "model.dequantizer.num_steps": (1, MAX_FLOW_STEPS),
    "model.dequantizer.hidden_channels": (1, MAX_WIDTH),
    "train.free_bits_groups": (None, MAX_LATENT_DIM),
}
# List fields whose every entry is a width.
_WIDTH_LISTS = ("model.encoder.channels", "model.decoder.hidden_channels")


# ------------------------------------------------------------------ types

_MISMATCH = object()


def _conform(value, hint):
  """`value` as type `hint` (ints widen to floats, tuples become lists), or
  _MISMATCH."""
  origin = typing.get_origin(hint)
  if origin is typing.Union:
    for option in typing.get_args(hint):
      result = _conform(value, option)
      if result is not _MISMATCH:
        return result
    return _MISMATCH
  if origin is list:
    if not isinstance(value, (list, tuple)):
      return _MISMATCH
    (entry_hint,) = typing.get_args(hint)
    entries = [_conform(entry, entry_hint) for entry in value]
    return (_MISMATCH if any(entry is _MISMATCH for entry in entries)
            else entries)
  if hint is typing.Any:
    return value
  if isinstance(value, bool):  # True is an int to Python, not to a config.
    return _MISMATCH
  if hint is int:
    return int(value) if isinstance(value, numbers.Integral) else _MISMATCH
  if hint is float:
    try:
      return float(value) if isinstance(value, numbers.Real) else _MISMATCH
    except OverflowError:  # An integer beyond float range.
      return _MISMATCH
  return value if isinstance(value, hint) else _MISMATCH


def _describe(hint, plural=False) -> str:
  """'an integer', 'a list of integers or lists of integers', ..."""
  if typing.get_origin(hint) is typing.Union:
    return " or ".join(_describe(option, plural)
                       for option in typing.get_args(hint))
  if typing.get_origin(hint) is list:
    entries = _describe(typing.get_args(hint)[0], plural=True)
    return f"lists of {entries}" if plural else f"a list of {entries}"
  singular, several = {int: ("an integer", "integers"),
                       float: ("a number", "numbers"),
                       str: ("a string", "strings")}[hint]
  return several if plural else singular


def check_types(node, prefix: str = ""):
  """Raises ValueError for a field of the dataclass tree `node` whose value
  has the wrong type; ints in float fields become floats, tuples lists.

  `prefix` is the dotted path of `node` in the whole config ("model.").
  """
  hints = typing.get_type_hints(type(node))
  for field in dataclasses.fields(node):
    value = getattr(node, field.name)
    name = prefix + field.name
    if dataclasses.is_dataclass(hints[field.name]):
      if not isinstance(value, hints[field.name]):
        raise ValueError(f"config field {name} must be a section of fields "
                         f"(a JSON object); got {value!r}.")
      check_types(value, name + ".")
      continue
    conformed = _conform(value, hints[field.name])
    if conformed is _MISMATCH:
      raise ValueError(
          f"config field {name} must be {_describe(hints[field.name])}; got "
          f"{value!r} ({type(value).__name__}).")
    setattr(node, field.name, conformed)


# ----------------------------------------------------------------- bounds


def _leaves(node, prefix=""):
  for field in dataclasses.fields(node):
    value = getattr(node, field.name)
    if dataclasses.is_dataclass(value):
      yield from _leaves(value, prefix + field.name + ".")
    else:
      yield prefix + field.name, value


def _check_range(name, value, lowest, highest, what=""):
  if lowest is not None and value < lowest:
    raise ValueError(f"{name}{what} must be >= {lowest}; got {value}.")
  if value > highest:
    raise ValueError(f"{name}{what} must be at most {highest}; got {value}.")


def _check_integers(node, prefix):
  """The bounds tables, and MAX_INTEGER for every other integer field."""
  for name, value in _leaves(node, prefix):
    if name in _SCALAR_BOUNDS:
      _check_range(name, value, *_SCALAR_BOUNDS[name])
    elif name in _WIDTH_LISTS:
      for width in value:
        _check_range(name, width, 1, MAX_WIDTH, " entries")
    elif (isinstance(value, int) and name not in _UNBOUNDED and
          abs(value) > MAX_INTEGER):
      raise ValueError(f"{name} must be within +-{MAX_INTEGER}; got "
                       f"{value}.")


def _check_values(name, count, per_item, limit, held):
  """`count` items of `per_item` pixel values must hold at most `limit`."""
  values = count * per_item
  if values > limit:
    largest = limit // per_item
    fix = (f"use {name} <= {largest}" if largest else
           "use fewer posterior samples or smaller images")
    raise ValueError(
        f"{name} {count} is too large: {held} would hold {values:,} pixel "
        f"values, more than the {limit:,} allowed; {fix}.")


def check_model_bounds(model):
  """Raises ValueError for a size of `model` (a ModelConfig) beyond its
  ceiling; run after `check_types`."""
  _check_integers(model, "model.")
  steps = [entry for level in model.decoder.num_steps
           for entry in (level if isinstance(level, list) else [level])]
  if sum(steps) > MAX_FLOW_STEPS:
    raise ValueError(
        f"model.decoder.num_steps {model.decoder.num_steps} has {sum(steps)} "
        f"Glow steps in all; at most {MAX_FLOW_STEPS} are allowed.")
  for entry in steps:
    _check_range("model.decoder.num_steps", entry, 0, MAX_FLOW_STEPS,
                 " entries")


def check_bounds(config):
  """Raises ValueError for a data or train size of `config` beyond its
  ceiling, also in proportion to the images (batches, the synthetic set,
  the sample PNGs); run after `check_model_bounds`."""
  _check_integers(config.data, "data.")
  _check_integers(config.train, "train.")
  model, train = config.model, config.train
  side = f"{model.image_size}x{model.image_size}x{model.channels}"
  pixels = model.image_size ** 2 * model.channels
  samples = train.num_posterior_samples
  tiled = (f", tiled {samples} times (train.num_posterior_samples),"
           if samples > 1 else "")
  _check_values("train.batch_size", train.batch_size, pixels * samples,
                MAX_BATCH_VALUES,
                f"a training step of {train.batch_size} images of {side}"
                f"{tiled}")
  _check_values("train.init_batch_size", train.init_batch_size, pixels,
                MAX_BATCH_VALUES,
                f"the init batch of {train.init_batch_size} images of {side}")
  if config.data.dataset == "synthetic":
    _check_values("data.synthetic_size", config.data.synthetic_size, pixels,
                  MAX_SYNTHETIC_VALUES,
                  f"the synthetic set of {config.data.synthetic_size} images "
                  f"of {side} (held in memory)")
  cell = train.figure_scale * model.image_size
  if cell > MAX_CELL_PIXELS:
    raise ValueError(
        f"train.figure_scale {train.figure_scale} would enlarge "
        f"{model.image_size}x{model.image_size} images to {cell} px cells; "
        f"at most {MAX_CELL_PIXELS} px: use train.figure_scale <= "
        f"{MAX_CELL_PIXELS // model.image_size} (0: cells of at least 96 "
        f"px).")


# -------------------------------------------- the KL knobs (issue 13, 3)

# Model variants without a global code z: the KL knobs have nothing to act
# on there.
VARIANTS_WITHOUT_Z = ("glow", "glow_original")


def kl_budget_problem(free_bits, groups, warmup_steps, latent_dim: int,
                      prefix: str = "train.", variant: str = ""):
  """Why free bits / KL warm-up settings are invalid, or None.

  Args:
    free_bits, groups, warmup_steps: `train.free_bits` (bits per z
      dimension, >= 0; 0: off), `train.free_bits_groups` (G >= 1, dividing
      d_z) and `train.kl_warmup_steps` (>= 0; 0: off).
    latent_dim: d_z; 0 when the model has no z.
    prefix: how the fields are named in the message ("train." for a config,
      "" for `GLVAE.compile`'s arguments).
    variant: the model variant, named in the message when it has no z.
  """
  if isinstance(free_bits, bool) or not (
      isinstance(free_bits, numbers.Real) and 0 <= free_bits < math.inf):
    return (f"{prefix}free_bits must be a finite number >= 0 (bits per z "
            f"dimension; 0 turns free bits off); got {free_bits!r}.")
  if isinstance(warmup_steps, bool) or not (
      isinstance(warmup_steps, numbers.Integral) and
      0 <= warmup_steps <= MAX_INTEGER):
    return (f"{prefix}kl_warmup_steps must be an integer in [0, "
            f"{MAX_INTEGER}] (steps of the linear KL warm-up; 0 turns it "
            f"off); got {warmup_steps!r}.")
  if isinstance(groups, bool) or not isinstance(groups, numbers.Integral):
    return (f"{prefix}free_bits_groups must be an integer >= 1; got "
            f"{groups!r}.")
  if latent_dim == 0:
    if free_bits > 0 or warmup_steps > 0 or groups != 1:
      what = f"model variant {variant!r}" if variant else "this model"
      return (f"{prefix}free_bits, {prefix}free_bits_groups and "
              f"{prefix}kl_warmup_steps act on the KL term of the global code "
              f"z, and {what} has no z: leave them at 0, 1 and 0 (or train a "
              f"variant with z, such as glvae).")
    return None
  if groups < 1 or latent_dim % groups:
    divisors = [g for g in range(1, latent_dim + 1) if latent_dim % g == 0]
    shown = ", ".join(map(str, divisors[:12])) + (
        ", ..." if len(divisors) > 12 else "")
    return (f"{prefix}free_bits_groups must be >= 1 and divide "
            f"model.latent_dim {latent_dim} into equal groups ({latent_dim}: "
            f"one per dimension); allowed: {shown}; got {groups}.")
  return None


def check_kl_budget(config):
  """Raises ValueError for bad `train.free_bits`, `free_bits_groups` or
  `kl_warmup_steps` of `config` (`kl_budget_problem`)."""
  model, train = config.model, config.train
  problem = kl_budget_problem(
      train.free_bits, train.free_bits_groups, train.kl_warmup_steps,
      0 if model.variant in VARIANTS_WITHOUT_Z else model.latent_dim,
      variant=model.variant)
  if problem:
    raise ValueError(problem)
