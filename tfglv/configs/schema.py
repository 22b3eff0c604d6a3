"""The configuration tree: model / data / train dataclasses, and validation.

    Config
      name                       the named recipe it started from
      model: ModelConfig         everything `tfglv.build_model` reads
        variant, image_size, channels, n_bits, latent_dim
        encoder: EncoderConfig   q(z|x)            (DESIGN section 2)
        prior: PriorConfig       p(z)              (DESIGN section 3)
        decoder: DecoderConfig   v = f(x; z)       (DESIGN section 4)
        glow_original            Glow's own flow, that variant's decoder
      data: DataConfig           where images come from
      train: TrainConfig         optimisation and bookkeeping (section 5)

Hyper-parameters are those of the authors' code.
"""

import dataclasses
import math
from typing import List, Union

from tfglv.configs import checks
from tfglv.configs import levels

MODEL_VARIANTS = ("glvae", "glow", "glvae_prior_only", "glow_original")
CONFIG_NAMES = ("tiny", "cifar10", "imagenet64", "lsun128", "celebahq256")
COUPLING_TYPES = ("affine", "additive")
COMPUTE_DTYPES = ("float32", "bfloat16", "float16")
CONV1X1_PARAMETERIZATIONS = ("full", "lu")
STRATEGIES = ("mirrored", "one_device", "multi_worker")
BAD_IMAGE_ACTIONS = ("error", "skip")
DEQUANTIZATIONS = ("uniform", "variational")

# A level of the decoder is either an int (an external level: that many
# steps) or a list of ints (an internal level: sub-blocks of steps, each
# followed by a prior block).
LevelSteps = Union[int, List[int]]


@dataclasses.dataclass
class EncoderConfig:
  """ResNet compression encoder q(z|x) (DESIGN section 2)."""
  # Width of each level; every level halves the image, down to 4x4, so an
  # image of side S needs log2(S / 4) levels (16: 2, 32: 3, 64: 4, ...).
  channels: List[int] = dataclasses.field(default_factory=lambda: [48, 96, 96])
  # Channels of the last 1x1 conv; the head reads its 4x4 map, flattened.
  out_channels: int = 8
  # The head is weight-normalised and initialised on data to this output
  # std (the authors' 0.01); 0 starts it at exactly zero.
  final_init_stddev: float = 0.01


@dataclasses.dataclass
class PriorConfig:
  """Flow prior p(z) (DESIGN section 3)."""
  # Glow steps on z (ActNorm, 1x1 "conv", four MLP couplings each).
  num_steps: int = 2
  # Width of the couplings' MLPs.
  hidden_units: int = 256


@dataclasses.dataclass
class DecoderConfig:
  """Conditional refined-Glow flow v = f(x; z) (DESIGN section 4).

  `num_steps` has one entry per level, from full resolution down; each
  level after the first starts with a squeeze (half the side, 4x the
  channels), so L levels need an image side divisible by 2**(L-1). The first
  and last entries are ints (that many Glow steps); the ones between are
  lists, one entry per sub-block: the steps of the sub-block, each followed
  by a prior block that factors out part of the channels. `[2, [6, 6],
  [6, 6], 4]` is the paper's CIFAR-10 flow. A level's couplings split its
  channels, so a level of 1 channel (the first level of a grayscale image)
  cannot have steps.
  """
  num_steps: List[LevelSteps] = dataclasses.field(
      default_factory=lambda: [2, [6, 6], [6, 6], 4])
  # Hidden width of each level's coupling networks (one entry per level).
  hidden_channels: List[int] = dataclasses.field(
      default_factory=lambda: [24, 512, 512, 512])
  # M of the fine-grained multi-scale architecture: an internal level's
  # sub-blocks factor out 1/M of its channels each (fewer than M blocks).
  num_prior_blocks: int = 4
  # "affine" (scale and shift, the paper's) or "additive" (shift only).
  coupling: str = "affine"
  # Bound of the affine scale, alpha * tanh(u / 2) + 1, in (0, 1].
  alpha: float = 1.0
  # The 1x1 convolutions' weights: "full" (the authors') or "lu".
  conv1x1: str = "full"
  # Coupling networks may compute in bfloat16, or float16 (with dynamic
  # loss scaling: tfglv.loss_scale), for training speed; affine updates,
  # log-dets and variables stay float32. Decoding chains many inverses,
  # where 16-bit rounding is not reproducible bit for bit, so inference
  # tools rebuild the model with float32 networks. README "Precision".
  compute_dtype: str = "float32"


@dataclasses.dataclass
class DequantizerConfig:
  """q(u|x) of `dequantization="variational"` (`tfglv.dequantization`)."""
  num_steps: int = 4  # Affine couplings on the noise.
  hidden_channels: int = 32  # Width of its feature and coupling networks.


@dataclasses.dataclass
class ModelConfig:
  """Everything that decides the model's variables and what it computes."""
  # "glvae" (the paper's), "glow" (no z), "glvae_prior_only" (z only
  # sets the Gaussian over v; DESIGN section 8) or "glow_original" (no z).
  variant: str = "glvae"
  # Images are image_size x image_size x channels.
  image_size: int = 32
  channels: int = 3
  # Bits per pixel value the model sees (8; 5 for the 5-bit tables).
  n_bits: int = 8
  # d_z, the size of the global code; even.
  latent_dim: int = 64
  encoder: EncoderConfig = dataclasses.field(default_factory=EncoderConfig)
  prior: PriorConfig = dataclasses.field(default_factory=PriorConfig)
  decoder: DecoderConfig = dataclasses.field(default_factory=DecoderConfig)
  glow_original: levels.GlowOriginalConfig = dataclasses.field(
      default_factory=levels.GlowOriginalConfig)
  # "uniform" (the paper's) or "variational" (a learned q(u|x)).
  dequantization: str = "uniform"
  dequantizer: DequantizerConfig = dataclasses.field(
      default_factory=DequantizerConfig)

  @property
  def image_shape(self):
    return (self.image_size, self.image_size, self.channels)

  @property
  def num_levels(self):
    return len(self.decoder.num_steps)


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
  # A folder image that is not a whole PNG/JPEG: "error" stops the run
  # before training and lists them; "skip" leaves them out with a warning.
  on_bad_image: str = "error"


@dataclasses.dataclass
class TrainConfig:
  """Optimisation (DESIGN section 5) and the run's bookkeeping: when to log,
  evaluate, draw samples and checkpoint."""
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
  # Enlargement of the sample PNGs' cells (nearest neighbour); 0: each cell
  # at least 96 px (tfglv.grids).
  figure_scale: int = 0
  num_posterior_samples: int = 1
  eval_posterior_samples: int = 5
  # Against posterior collapse, in the training loss only (tfglv.kl_budget;
  # 0 = off): free bits per z dimension (in G groups), KL warm-up steps.
  free_bits: float = 0.0
  free_bits_groups: int = 1
  kl_warmup_steps: int = 0
  seed: int = 0
  strategy: str = "mirrored"


@dataclasses.dataclass
class Config:
  """The whole configuration of one run."""
  name: str = "cifar10"
  model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
  data: DataConfig = dataclasses.field(default_factory=DataConfig)
  train: TrainConfig = dataclasses.field(default_factory=TrainConfig)


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


def _check_choice(value, allowed, what):
  if value not in allowed:
    raise ValueError(f"Unknown {what} {value!r}; allowed: "
                     f"{', '.join(map(str, allowed))}.")


def _check_finite_numbers(config, prefix=""):
  # NaN passes every "> 0" check, and inf passes most; either would only
  # show up as a diverged run.
  for name in field_names(config):
    value = config
    for part in name.split("."):
      value = getattr(value, part)
    if isinstance(value, float) and not math.isfinite(value):
      raise ValueError(f"{prefix}{name} must be a finite number; got {value}.")


def encoder_size_problem(image_size: int, num_levels: int):
  """Why `num_levels` encoder levels cannot take `image_size`, or None.

  Each level halves the image; the head reads the final map, which must be
  at least 2x2. The message names the level counts that fit.
  """
  side = image_size / 2 ** num_levels
  if side == int(side) and side >= 2:
    return None
  fitting = [n for n in range(1, 8)
             if image_size % 2 ** n == 0 and image_size // 2 ** n >= 2]
  fix = (f"use {' or '.join(map(str, fitting))} levels (one width each in "
         f"model.encoder.channels, e.g. --set 'model.encoder.channels="
         f"{[32] * fitting[-1]}')" if fitting else
         "no level count fits: use an even image_size >= 4 (pad or resize "
         "the images)")
  return (f"The encoder with {num_levels} levels halves the image "
          f"{num_levels} times; {image_size}x{image_size} does not halve to "
          f"a map of at least 2x2 that often: {fix}.")


def validate_model(model: ModelConfig) -> ModelConfig:
  """Raises ValueError naming the problem and the allowed values."""
  checks.check_types(model, "model.")
  checks.check_model_bounds(model)
  _check_finite_numbers(model, "model.")
  _check_choice(model.variant, MODEL_VARIANTS, "model variant")
  _check_choice(model.decoder.coupling, COUPLING_TYPES, "coupling type")
  _check_choice(model.decoder.compute_dtype, COMPUTE_DTYPES, "compute_dtype")
  _check_choice(model.decoder.conv1x1, CONV1X1_PARAMETERIZATIONS,
                "decoder.conv1x1 parameterization")
  _check_choice(model.dequantization, DEQUANTIZATIONS, "model.dequantization")
  if not 1 <= model.n_bits <= 8:
    raise ValueError(
        f"n_bits must be an integer in [1, 8]; got {model.n_bits}.")
  if not 0.0 < model.decoder.alpha < 1.0 + 1e-9:
    raise ValueError(
        f"alpha must be in (0, 1] so the coupling scale alpha*tanh(u/2)+1 "
        f"stays positive; got {model.decoder.alpha}.")
  if model.channels < 1:
    raise ValueError(f"channels must be >= 1; got {model.channels}.")
  if model.latent_dim < 2 or model.latent_dim % 2:
    raise ValueError(
        f"latent_dim must be an even integer >= 2 (the prior couplings split "
        f"z in halves); got {model.latent_dim}.")
  levels.check_levels(model)
  if model.variant not in checks.VARIANTS_WITHOUT_Z:  # No encoder.
    problem = encoder_size_problem(model.image_size,
                                   len(model.encoder.channels))
    if problem:
      raise ValueError(problem)
  return model


def validate(config: Config) -> Config:
  """Raises ValueError naming the problem and the allowed values."""
  checks.check_types(config)
  validate_model(config.model)
  _check_finite_numbers(config.train, "train.")
  train = config.train
  _check_choice(train.strategy, STRATEGIES, "strategy")
  if train.batch_size < 1:
    raise ValueError(f"train.batch_size must be >= 1; got {train.batch_size}.")
  if train.divergence_intervals < 0:
    raise ValueError("train.divergence_intervals must be >= 0 (0 disables "
                     f"the warning); got {train.divergence_intervals}.")
  if train.figure_scale < 0:
    raise ValueError("train.figure_scale must be >= 0 (0: cells of at least "
                     f"96 px); got {train.figure_scale}.")
  if train.grad_accumulation < 1:
    raise ValueError("train.grad_accumulation must be >= 1; got "
                     f"{train.grad_accumulation}.")
  _check_choice(config.data.on_bad_image, BAD_IMAGE_ACTIONS,
                "data.on_bad_image")
  checks.check_bounds(config)
  checks.check_kl_budget(config)
  return config
