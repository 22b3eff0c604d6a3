"""Shared pieces of the benchmarks: models, train steps, timing, tables.

Every benchmark builds its models here so that tfglv and its peer
(`tfp.bijectors.Glow`) are trained by the same step function, with the same
optimizer, in the same process. Timing interleaves the models round by
round: on a shared 2-core machine the load moves during a run, and
interleaving makes the printed ratios robust to it.

This module defines no flags: the entry points (the `bench/*.py` with
`app.run`) define their own and pass their values in, e.g.

    flags.DEFINE_enum("step", "trainer", harness.STEPS, harness.STEP_HELP)
    step = harness.step_for(model, FLAGS.step, FLAGS.optimizer)
"""

import os
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore")

import keras  # pylint: disable=g-import-not-at-top
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from bench import cifar_subset
import tfglv
import tfglv.training  # pylint: disable=unused-import
from tfglv.data import files as data_files

tfb, tfd = tfp.bijectors, tfp.distributions

# The small benchmark size: the cifar10 architecture with fewer, narrower
# steps (the full one is `cifar10` itself).
SIZES = {
    "small": dict(name="cifar10", overrides={
        "decoder.num_steps": "[1, [2, 2], [2, 2], 2]",
        "decoder.hidden_channels": "[24, 128, 128, 128]"}),
    "full": dict(name="cifar10", overrides={}),
}


def hidden_width(size: str) -> int:
  """Coupling width of the size's internal levels (the peer's width)."""
  overrides = SIZES[size]["overrides"]
  if "decoder.hidden_channels" in overrides:
    return int(overrides["decoder.hidden_channels"].strip("[]").split(",")[-1])
  config = tfglv.configs.get(SIZES[size]["name"])
  return config.model.decoder.hidden_channels[-1]


def npz_help(shape: str = "32x32x3") -> str:
  """The help of a benchmark's --npz flag, for models of image `shape`."""
  return (
      "Images for the timed steps: any .npz tfglv reads (uint8 x_train/"
      f"x_test, or one 'images' array) whose images are {shape}, the shape "
      "of the benchmark's models; N may be small (images repeat). Default: "
      "the CIFAR-10 subset (bench.cifar_subset) where present, else random "
      "pixels, so a fresh clone runs as is. Pixels hardly move timings.")


def load_images(count: int, image_size: int = 32, seed: int = 0,
                npz: str = "", channels: int = 3):
  """uint8 [count, H, W, C]: the train images of `npz` (repeated as needed)
  when given, else the CIFAR-10 subset where present, else noise.

  Raises:
    ValueError: `npz` is unreadable or its images are not H x W x C.
  """
  shape = (image_size, image_size, channels)
  if npz:
    images = data_files.load_npz(npz)["train"]["image"]
    if images.shape[1:] != shape:
      raise ValueError(
          f"--npz {npz}: images are {'x'.join(map(str, images.shape[1:]))}; "
          f"this benchmark's models take {'x'.join(map(str, shape))}. "
          "bench.train_variants trains on images of any shape.")
    return tf.constant(np.resize(images, (count,) + shape))
  images = (cifar_subset.load("train", count)
            if shape == (32, 32, 3) else None)
  if images is not None:
    return tf.constant(images)
  rng = np.random.RandomState(seed)
  return tf.constant(rng.randint(0, 256, (count,) + shape), tf.uint8)


def num_params(variables) -> int:
  return int(sum(np.prod(v.shape) for v in variables))


def build_tfglv(size: str, variant: str, parameterization: str = "full",
                compute_dtype: str = "float32", init_images=None):
  spec = SIZES[size]
  overrides = dict(spec["overrides"])
  overrides["decoder.compute_dtype"] = compute_dtype
  overrides["decoder.conv1x1"] = parameterization
  config = tfglv.configs.override(
      tfglv.configs.get(spec["name"], variant=variant), overrides)
  model = tfglv.build_model(config.model)
  if init_images is not None:
    model.initialize(init_images)
  return model


def _tfp_glow(num_steps_per_block: int, hidden: int, num_glow_blocks: int = 3):
  from tensorflow_probability.python.bijectors import glow as glow_lib  # pylint: disable=g-import-not-at-top
  return tfb.Glow(
      output_shape=(32, 32, 3), num_glow_blocks=num_glow_blocks,
      num_steps_per_block=num_steps_per_block,
      coupling_bijector_fn=lambda shape: glow_lib.GlowDefaultNetwork(
          shape, num_hidden=hidden),
      # TFP needs both functions once one is given.
      exit_bijector_fn=glow_lib.GlowDefaultExitNetwork, seed=0)


class TFPGlowModel:
  """`tfp.bijectors.Glow` as a density over dequantised uint8 images.

  Its ActNorm layers initialise from the data of their first call, as
  tfglv's do from `model.initialize(images)`: that first call must see
  real images (a batch of zeros would give every ActNorm a 1/eps scale, a
  loss of ~1e34 bits/dim and infinite gradients).
  """

  def __init__(self, num_steps_per_block: int, hidden: int, init_images=None):
    self.num_steps_per_block = num_steps_per_block
    self.hidden = hidden
    self.bijector = _tfp_glow(num_steps_per_block, hidden)
    self.distribution = tfd.TransformedDistribution(
        tfd.Sample(tfd.Normal(0.0, 1.0), [32 * 32 * 3]), self.bijector)
    if init_images is None:
      init_images = load_images(64)
    # Creates the variables and initialises ActNorm on real images.
    self.distribution.log_prob(
        self.dequantize(init_images, tf.constant([0, 1], tf.int32)))

  @staticmethod
  def dequantize(images, seed):
    """uint8 -> [-1, 1), uniform noise inside each grey level."""
    x = tf.cast(images, tf.float32)
    noise = tf.random.stateless_uniform(tf.shape(x), seed)
    return (x + noise) * (2.0 / 256.0) - 1.0

  @property
  def trainable_variables(self):
    return list(self.bijector.trainable_variables)

  def compute_losses(self, images, seed, training=True, num_samples=1):
    del training, num_samples  # An exact likelihood: no posterior samples.
    x = self.dequantize(images, seed)
    num_dims = 32 * 32 * 3
    nll = -self.distribution.log_prob(x) + num_dims * np.log(128.0)
    bpd = nll / (num_dims * np.log(2.0))
    return {"loss": bpd, "nll": bpd, "kl": tf.zeros_like(bpd)}


def tfp_glow_params(num_steps_per_block: int, hidden: int) -> int:
  """Trainable parameters of `_tfp_glow` on 32x32x3 with 3 blocks.

  Per step of a block with c channels: ActNorm 2c, LU 1x1 conv c^2, and
  the coupling net Conv3x3(c/2 -> h) + Conv1x1(h -> h) + Conv3x3(h -> c),
  with biases; blocks have c = 12, 24, 48. Checked against a build in
  `matched_tfp_glow`.
  """
  per_step = 3 * hidden**2 + 1140 * hidden + 3276
  return num_steps_per_block * per_step + 3276


def matched_tfp_glow(target_params: int, hidden: int = 512) -> TFPGlowModel:
  """tfp Glow with about `target_params` parameters and width ~`hidden`.

  The step count is the closest at width `hidden`; the width is then
  adjusted (to the nearest 8) so the counts match within a fraction of %.
  """
  steps = max(1, round((target_params - 3276) /
                       (tfp_glow_params(1, hidden) - 3276)))
  best = min(range(8, 4 * hidden, 8), key=lambda h: abs(
      tfp_glow_params(steps, h) - target_params))
  model = TFPGlowModel(steps, best)
  built = num_params(model.trainable_variables)
  if built != tfp_glow_params(steps, best):
    raise AssertionError(f"tfp Glow parameter formula is off: built {built}, "
                         f"formula {tfp_glow_params(steps, best)}.")
  return model


# Choices and help of the --step and --optimizer flags of the entry points
# that train (the first choice is the default).
STEPS = ("trainer", "plain")
STEP_HELP = ("trainer: tfglv's TrainStep, as train.main runs it; plain: "
             "loss, gradients and the optimizer in one tf.function.")
OPTIMIZERS = ("tfglv", "keras")
OPTIMIZER_HELP = ("tfglv: the trainer's fused AdamW; keras: "
                  "keras.optimizers.AdamW. Every model uses the same one.")


def step_for(model, step: str, optimizer: str, jit_compile: bool = False,
             batch_size: int = 16):
  """`make_train_step` of kind `step` (--step) with `optimizer` (--optimizer).

  XLA (`jit_compile`) always gets the plain step.
  """
  return make_train_step(model, make_optimizer(optimizer), jit_compile,
                         batch_size, "plain" if jit_compile else step)


def make_optimizer(kind: str = "tfglv"):
  """The optimizer of every benchmarked model: AdamW as in DESIGN 5.

  "tfglv" is the trainer's AdamW (`tfglv.training.optimizer`: one fused
  `ResourceApplyAdam` per variable); "keras" is `keras.optimizers.AdamW`,
  the same math in some thirty small ops per variable.
  """
  if kind == "keras":
    return keras.optimizers.AdamW(learning_rate=1e-4, weight_decay=1e-6)
  if kind == "tfglv":
    return tfglv.training.optimizer.ReducedGradientAdamW(
        learning_rate=1e-4, weight_decay=1e-6)
  raise ValueError(f"Unknown optimizer {kind!r}; allowed: "
                   f"{', '.join(OPTIMIZERS)}.")


def make_train_step(model, optimizer, jit_compile: bool = False,
                    batch_size: int = 16, kind: str = "trainer"):
  """A compiled training step `fn(images, seed) -> loss`.

  "trainer" is tfglv's own `tfglv.training.steps.TrainStep` (the step
  `train.main` runs: loss, gradients, their all-reduce and norm, the
  finite check, AdamW) under the default strategy, fed `images` again and
  again; "plain" is loss, gradients and the optimizer alone, in one
  `tf.function` that may be XLA-compiled.
  """
  variables = list(model.trainable_variables)
  optimizer.build(variables)
  if kind == "trainer":
    if jit_compile:
      raise ValueError("XLA rows need --step=plain.")
    config = tfglv.configs.override(tfglv.configs.get("cifar10"), {
        "train.batch_size": str(batch_size)}).train
    train_step = tfglv.training.steps.TrainStep(
        model, optimizer, tf.distribute.get_strategy(), config, batch_size,
        step=tf.Variable(0, dtype=tf.int64, trainable=False),
        skipped_steps=tf.Variable(0, dtype=tf.int64, trainable=False))
    feed = []  # (images, iterator over them), made by the first call.

    def trainer_step(images, seed):
      del seed  # TrainStep derives its seed from its step counter.
      if not feed:
        feed.append((images, iter(tf.data.Dataset.from_tensors(
            {"image": images}).repeat())))
      if images is not feed[0][0]:
        raise ValueError("A trainer step is fed one batch, again and again; "
                         "pass the tensor of its first call.")
      return train_step.train_step(feed[0][1])["loss"]

    return trainer_step
  if kind != "plain":
    raise ValueError(f"Unknown step {kind!r}; allowed: {', '.join(STEPS)}.")

  def step(images, seed):
    with tf.GradientTape() as tape:
      losses = model.compute_losses(images, seed, training=True)
      loss = tf.reduce_sum(losses["loss"]) / batch_size
    grads = tape.gradient(loss, variables)
    optimizer.apply(grads, variables)
    return loss

  return tf.function(step, jit_compile=jit_compile)


def time_interleaved(steps: dict, images, rounds: int = 3,
                     steps_per_round: int = 1, warmup: int = 2):
  """Seconds per call of each named step, interleaved; median over rounds.

  Returns {name: [seconds of each round]} after `warmup` untimed calls
  (tracing, compilation, first-touch allocation) of every step.
  """
  seed = tf.constant([0, 0], tf.int32)
  for fn in steps.values():
    for _ in range(warmup):
      fn(images, seed).numpy()
  times = {name: [] for name in steps}
  for r in range(rounds):
    for name, fn in steps.items():
      start = time.perf_counter()
      for s in range(steps_per_round):
        out = fn(images, tf.constant([r, s], tf.int32))
      out.numpy()
      times[name].append((time.perf_counter() - start) / steps_per_round)
  return times


def load_average() -> str:
  one, five, _ = os.getloadavg()
  return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on " \
         f"{os.cpu_count()} cores"


def print_table(title, header, rows):
  widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
  line = "  ".join("{:>%d}" % w for w in widths)
  print(f"\n{title}")
  print(line.format(*header))
  print(line.format(*["-" * w for w in widths]))
  for row in rows:
    print(line.format(*row))
