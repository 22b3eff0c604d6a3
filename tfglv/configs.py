"""Named, typed configurations for every model of the paper.

One `Config` flows from the command line to the model. It is a tree of
dataclasses (model / encoder / prior / decoder / data / train) built from a
named default, then overridden field by field:

    config = tfglv.configs.get("cifar10", model="glow")
    config = tfglv.configs.override(config, {"train.batch_size": "64"})

`to_dict`/`from_dict` (and `save`/`load` as JSON) round-trip exactly, so a
training run writes its resolved config next to its checkpoints and every
later tool (evaluation, export) rebuilds the same model from it.

Hyper-parameters are those of the authors' code (DESIGN.md sections 2-5).
"""

import dataclasses
import json
import math
import typing
from typing import Any, Dict, List, Union

MODEL_VARIANTS = ("glvae", "glow", "glvae_prior_only")
CONFIG_NAMES = ("tiny", "cifar10", "imagenet64", "lsun128", "celebahq256")
COUPLING_TYPES = ("affine", "additive")
COMPUTE_DTYPES = ("float32", "bfloat16")
CONV1X1_PARAMETERIZATIONS = ("full", "lu")
STRATEGIES = ("mirrored", "one_device", "multi_worker")

# A level of the decoder is either an int (an external level: that many
# steps) or a list of ints (an internal level: sub-blocks of steps, each
# followed by a prior block).
LevelSteps = Union[int, List[int]]


@dataclasses.dataclass
class EncoderConfig:
  """ResNet compression encoder q(z|x) (DESIGN section 2)."""
  channels: List[int] = dataclasses.field(default_factory=lambda: [48, 96, 96])
  out_channels: int = 8
  final_init_stddev: float = 0.01


@dataclasses.dataclass
class PriorConfig:
  """Flow prior p(z) (DESIGN section 3)."""
  num_steps: int = 2
  hidden_units: int = 256


@dataclasses.dataclass
class DecoderConfig:
  """Conditional refined-Glow flow v = f(x; z) (DESIGN section 4)."""
  num_steps: List[Any] = dataclasses.field(
      default_factory=lambda: [2, [6, 6], [6, 6], 4])
  hidden_channels: List[int] = dataclasses.field(
      default_factory=lambda: [24, 512, 512, 512])
  num_prior_blocks: int = 4  # M of the fine-grained multi-scale architecture.
  coupling: str = "affine"
  alpha: float = 1.0
  conv1x1: str = "full"  # "full" (the authors') or "lu"
  # Coupling networks may compute in bfloat16 for training speed; affine
  # updates, log-dets and variables stay float32. Decoding chains many
  # inverses, where bfloat16 rounding is not reproducible bit for bit, so
  # inference tools rebuild the model with float32 networks.
  compute_dtype: str = "float32"


@dataclasses.dataclass
class DataConfig:
  """Where images come from and how they are preprocessed."""
  # "synthetic" (embedded, needs no files), a TFDS name ("cifar10",
  # "downsampled_imagenet/64x64", "lsun/bedroom", "celeb_a_hq/256"),
  # "npz" (see `path`) or "folder" (see `path`).
  dataset: str = "synthetic"
  path: str = ""
  data_dir: str = ""
  augmentation: str = "none"  # "none", "cifar", "flip", "center_crop"
  synthetic_size: int = 4096
  shuffle_buffer: int = 10000


@dataclasses.dataclass
class TrainConfig:
  """Optimisation and bookkeeping (DESIGN section 5)."""
  batch_size: int = 512
  num_steps: int = 100000
  learning_rate: float = 1e-3
  warmup_steps: int = 50
  lr_decay: float = 0.999997
  weight_decay: float = 1e-6
  beta1: float = 0.9
  beta2: float = 0.999
  epsilon: float = 1e-8
  grad_clip_norm: float = 0.0  # 0 disables clipping.
  grad_accumulation: int = 1
  init_batch_size: int = 1024
  checkpoint_every: int = 1000
  keep_checkpoints: int = 3
  eval_every: int = 5000
  eval_batches: int = 0  # 0 = the whole test split.
  log_every: int = 100
  # Warn when the logged bpd rose over this many consecutive log intervals
  # (by >= 0.05 bits/dim in all); 0 disables the warning.
  divergence_intervals: int = 3
  sample_every: int = 5000
  num_posterior_samples: int = 1
  eval_posterior_samples: int = 5
  seed: int = 0
  strategy: str = "mirrored"


@dataclasses.dataclass
class Config:
  """The whole configuration of one run."""
  name: str = "cifar10"
  model: str = "glvae"
  image_size: int = 32
  channels: int = 3
  n_bits: int = 8
  latent_dim: int = 64  # d_z
  encoder: EncoderConfig = dataclasses.field(default_factory=EncoderConfig)
  prior: PriorConfig = dataclasses.field(default_factory=PriorConfig)
  decoder: DecoderConfig = dataclasses.field(default_factory=DecoderConfig)
  data: DataConfig = dataclasses.field(default_factory=DataConfig)
  train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

  @property
  def image_shape(self):
    return (self.image_size, self.image_size, self.channels)

  @property
  def num_levels(self):
    return len(self.decoder.num_steps)


def _cifar10() -> Config:
  return Config(
      name="cifar10", image_size=32, latent_dim=64,
      encoder=EncoderConfig(channels=[48, 96, 96], out_channels=8),
      prior=PriorConfig(num_steps=2, hidden_units=256),
      decoder=DecoderConfig(num_steps=[2, [6, 6], [6, 6], 4],
                            hidden_channels=[24, 512, 512, 512]),
      data=DataConfig(dataset="cifar10", augmentation="cifar"),
      train=TrainConfig(batch_size=512, warmup_steps=50, weight_decay=1e-6))


def _imagenet64() -> Config:
  return Config(
      name="imagenet64", image_size=64, latent_dim=128,
      encoder=EncoderConfig(channels=[48, 96, 96, 192], out_channels=32),
      prior=PriorConfig(num_steps=2, hidden_units=256),
      decoder=DecoderConfig(num_steps=[2, [8, 8], [8, 8], [6, 6], 4],
                            hidden_channels=[24, 512, 512, 512, 512],
                            alpha=1.0),
      data=DataConfig(dataset="downsampled_imagenet/64x64",
                      augmentation="none"),
      train=TrainConfig(batch_size=256, warmup_steps=200, weight_decay=5e-4))


def _lsun128() -> Config:
  return Config(
      name="lsun128", image_size=128, latent_dim=256,
      encoder=EncoderConfig(channels=[48, 96, 96, 192, 192], out_channels=32),
      prior=PriorConfig(num_steps=2, hidden_units=512),
      decoder=DecoderConfig(
          num_steps=[2, [16, 16], [16, 16], [8, 8], [4, 4], 2],
          hidden_channels=[24, 256, 256, 256, 256, 512]),
      data=DataConfig(dataset="lsun/bedroom", augmentation="center_crop"),
      train=TrainConfig(batch_size=256, warmup_steps=200, weight_decay=5e-4))


def _celebahq256() -> Config:
  return Config(
      name="celebahq256", image_size=256, latent_dim=256,
      encoder=EncoderConfig(channels=[48, 96, 96, 192, 192, 256],
                            out_channels=32),
      prior=PriorConfig(num_steps=2, hidden_units=512),
      decoder=DecoderConfig(
          num_steps=[2, [12, 12], [10, 10], [8, 8], [4, 4], [2, 2], 1],
          hidden_channels=[24, 256, 256, 256, 256, 256, 512]),
      data=DataConfig(dataset="celeb_a_hq/256", augmentation="flip"),
      train=TrainConfig(batch_size=40, warmup_steps=200, weight_decay=5e-4))


def _tiny() -> Config:
  """A few-thousand-parameter model for tests and the default CPU run."""
  return Config(
      name="tiny", image_size=16, latent_dim=8,
      encoder=EncoderConfig(channels=[8, 8], out_channels=4),
      prior=PriorConfig(num_steps=1, hidden_units=16),
      decoder=DecoderConfig(num_steps=[1, [1, 1], 1],
                            hidden_channels=[8, 16, 16]),
      data=DataConfig(dataset="synthetic", augmentation="none",
                      synthetic_size=2048, shuffle_buffer=2048),
      train=TrainConfig(batch_size=32, num_steps=300, warmup_steps=20,
                        init_batch_size=128, checkpoint_every=100,
                        eval_every=100, eval_batches=4, log_every=10,
                        sample_every=100))


_FACTORIES = {
    "tiny": _tiny,
    "cifar10": _cifar10,
    "imagenet64": _imagenet64,
    "lsun128": _lsun128,
    "celebahq256": _celebahq256,
}


def get(name: str, model: str = "glvae", **overrides) -> Config:
  """Returns the named config for `model`, validated.

  Args:
    name: one of `CONFIG_NAMES`.
    model: one of `MODEL_VARIANTS`.
    **overrides: dotted field names with `__` for dots, e.g.
      `train__batch_size=64`.
  """
  if name not in _FACTORIES:
    raise ValueError(
        f"Unknown config name {name!r}; allowed: {', '.join(CONFIG_NAMES)}.")
  config = _FACTORIES[name]()
  config.model = model
  if overrides:
    config = override(config, {k.replace("__", "."): v
                               for k, v in overrides.items()})
  validate(config)
  return config


def _field_type(cls, field_name):
  hints = typing.get_type_hints(cls)
  return hints[field_name]


def _parse_value(text: str, current: Any, key: str):
  """Parses a command-line string into the type of the current value."""
  if not isinstance(text, str):
    return text
  try:
    if isinstance(current, bool):
      lowered = text.strip().lower()
      if lowered in ("1", "true", "yes"):
        return True
      if lowered in ("0", "false", "no"):
        return False
      raise ValueError("expected true or false")
    if isinstance(current, int):
      return int(text)
    if isinstance(current, float):
      return float(text)
    if isinstance(current, list):
      return json.loads(text)
  except (ValueError, json.JSONDecodeError) as e:
    raise ValueError(
        f"Cannot parse {text!r} for config field {key!r} "
        f"(expected {type(current).__name__}, e.g. {current!r}): {e}") from None
  return text


def field_names(config=None, prefix=""):
  """All settable dotted field names of a config tree."""
  config = config if config is not None else Config()
  names = []
  for f in dataclasses.fields(config):
    value = getattr(config, f.name)
    if dataclasses.is_dataclass(value):
      names.extend(field_names(value, prefix + f.name + "."))
    else:
      names.append(prefix + f.name)
  return names


def override(config: Config, values: Dict[str, Any]) -> Config:
  """Returns a copy of `config` with dotted fields replaced.

  Values may be strings (parsed to the field's type) or typed values.
  Raises ValueError naming the unknown field and the allowed ones.
  """
  config = from_dict(to_dict(config))
  allowed = field_names(config)
  for key, value in values.items():
    parts = key.split(".")
    node = config
    for part in parts[:-1]:
      if not hasattr(node, part) or not dataclasses.is_dataclass(
          getattr(node, part)):
        raise ValueError(f"Unknown config field {key!r}; allowed: "
                         f"{', '.join(allowed)}.")
      node = getattr(node, part)
    if (not dataclasses.is_dataclass(node) or
        parts[-1] not in {f.name for f in dataclasses.fields(node)} or
        dataclasses.is_dataclass(getattr(node, parts[-1]))):
      raise ValueError(f"Unknown config field {key!r}; allowed: "
                       f"{', '.join(allowed)}.")
    current = getattr(node, parts[-1])
    setattr(node, parts[-1], _parse_value(value, current, key))
  return config


def to_dict(config) -> Dict[str, Any]:
  return dataclasses.asdict(config)


def from_dict(values: Dict[str, Any]) -> Config:
  """Inverse of `to_dict`; unknown keys raise a ValueError."""

  def build(cls, data):
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
      raise ValueError(f"Unknown {cls.__name__} fields {sorted(unknown)}; "
                       f"allowed: {sorted(known)}.")
    kwargs = {}
    for name, value in data.items():
      ftype = _field_type(cls, name)
      if dataclasses.is_dataclass(ftype):
        kwargs[name] = build(ftype, value)
      else:
        kwargs[name] = value
    return cls(**kwargs)

  return build(Config, values)


def to_json(config: Config) -> str:
  return json.dumps(to_dict(config), indent=2, sort_keys=True)


def from_json(text: str) -> Config:
  return from_dict(json.loads(text))


def save(config: Config, path: str):
  """Writes `config` as JSON; atomically, so a killed run never leaves half."""
  import tensorflow as tf  # Local import: configs stay importable without TF.
  temporary = f"{path}.tmp"
  with tf.io.gfile.GFile(temporary, "w") as f:
    f.write(to_json(config))
  tf.io.gfile.rename(temporary, path, overwrite=True)


def load(path: str) -> Config:
  import tensorflow as tf
  with tf.io.gfile.GFile(path, "r") as f:
    return from_json(f.read())


def _check_choice(value, allowed, what):
  if value not in allowed:
    raise ValueError(f"Unknown {what} {value!r}; allowed: "
                     f"{', '.join(map(str, allowed))}.")


def _check_finite_numbers(config: Config):
  # NaN passes every "> 0" check, and inf passes most; either would only
  # show up as a diverged run.
  for name in field_names(config):
    value = config
    for part in name.split("."):
      value = getattr(value, part)
    if isinstance(value, float) and not math.isfinite(value):
      raise ValueError(f"{name} must be a finite number; got {value}.")


def validate(config: Config) -> Config:
  """Raises ValueError naming the problem and the allowed values."""
  _check_finite_numbers(config)
  _check_choice(config.model, MODEL_VARIANTS, "model variant")
  _check_choice(config.decoder.coupling, COUPLING_TYPES, "coupling type")
  _check_choice(config.decoder.compute_dtype, COMPUTE_DTYPES, "compute_dtype")
  _check_choice(config.decoder.conv1x1, CONV1X1_PARAMETERIZATIONS,
                "decoder.conv1x1 parameterization")
  _check_choice(config.train.strategy, STRATEGIES, "strategy")
  if not 1 <= config.n_bits <= 8:
    raise ValueError(f"n_bits must be an integer in [1, 8]; got {config.n_bits}.")
  if not 0.0 < config.decoder.alpha < 1.0 + 1e-9:
    raise ValueError(
        f"alpha must be in (0, 1] so the coupling scale alpha*tanh(u/2)+1 "
        f"stays positive; got {config.decoder.alpha}.")
  if config.channels < 1:
    raise ValueError(f"channels must be >= 1; got {config.channels}.")
  if config.latent_dim < 2 or config.latent_dim % 2:
    raise ValueError(
        f"latent_dim must be an even integer >= 2 (the prior couplings split "
        f"z in halves); got {config.latent_dim}.")
  levels = config.decoder.num_steps
  if len(levels) < 2:
    raise ValueError(f"decoder.num_steps needs at least 2 levels; got {levels}.")
  if len(config.decoder.hidden_channels) != len(levels):
    raise ValueError(
        f"decoder.hidden_channels has {len(config.decoder.hidden_channels)} "
        f"entries but decoder.num_steps has {len(levels)} levels; they must "
        f"match.")
  if not isinstance(levels[0], int) or not isinstance(levels[-1], int):
    raise ValueError(
        f"decoder.num_steps: the first and last levels must be ints (steps "
        f"of an external level); got {levels}.")
  for level in levels[1:-1]:
    if not isinstance(level, (list, tuple)) or not level:
      raise ValueError(
          f"decoder.num_steps: internal levels must be non-empty lists of "
          f"steps per sub-block; got {levels}.")
    if len(level) >= config.decoder.num_prior_blocks:
      raise ValueError(
          f"decoder.num_steps: an internal level has {len(level)} sub-blocks "
          f"but num_prior_blocks (M) is {config.decoder.num_prior_blocks}; "
          f"it must be fewer than M.")
  divisor = 2 ** (len(levels) - 1)
  if config.image_size % divisor:
    allowed = ", ".join(str(divisor * k) for k in range(1, 5))
    raise ValueError(
        f"image_size {config.image_size} cannot be divided by the "
        f"{len(levels)}-level multi-scale architecture (needs a multiple of "
        f"{divisor}: {allowed}, ...).")
  if config.train.batch_size < 1:
    raise ValueError(f"train.batch_size must be >= 1; got "
                     f"{config.train.batch_size}.")
  if config.train.divergence_intervals < 0:
    raise ValueError("train.divergence_intervals must be >= 0 (0 disables "
                     f"the warning); got {config.train.divergence_intervals}.")
  if config.train.grad_accumulation < 1:
    raise ValueError("train.grad_accumulation must be >= 1; got "
                     f"{config.train.grad_accumulation}.")
  return config
