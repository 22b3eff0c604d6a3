"""Shared pieces of the benchmarks: models, train steps, timing, tables.

Every benchmark builds its models here so that tfglv and its peer
(`tfp.bijectors.Glow`) are trained by the same step function, with the same
optimizer, in the same process. Timing interleaves the models round by
round: on a shared 2-core machine the load moves during a run, and
interleaving makes the printed ratios robust to it. Every timing is kept
twice (`Timing`): wall seconds and the process's CPU-seconds, and every
table prints images per CPU-second next to images per second
(`speed_cells`): other processes stretch the first, hardly the second.

This module defines no flags when imported: the entry points (the
`bench/*.py` with `app.run`) define theirs when run, the ones that train
a step by `define_step_flags()`, and pass the values in, e.g.

    step = harness.step_for(model, FLAGS.step, FLAGS.optimizer)
"""

import os
import statistics
import time
from typing import Callable, Dict, NamedTuple, Optional
import warnings

from absl import flags

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


def define_step_flags():
  """--step, --optimizer and --npz, as every bench that trains takes them
  (called from its `define_flags`)."""
  flags.DEFINE_enum("step", STEPS[0], STEPS, STEP_HELP)
  flags.DEFINE_enum("optimizer", OPTIMIZERS[0], OPTIMIZERS, OPTIMIZER_HELP)
  flags.DEFINE_string("npz", "", npz_help())


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


class Timing(NamedTuple):
  """Seconds of a timed region: `wall` (elapsed) and `cpu`, the process's
  user + system CPU time over all its threads (`time.process_time`).

  On a shared machine other processes stretch `wall` but hardly `cpu`, so
  "images per CPU-second" compares runs made under different loads; on an
  idle machine it is images per second divided by the busy cores.
  """
  wall: float
  cpu: float


class Stopwatch:
  """Wall and CPU time of a region: `with Stopwatch() as watch: ...`, then
  `watch.timing`. Whatever the region computes must be finished inside it
  (call `.numpy()` on its outputs)."""

  def __enter__(self):
    self._start = Timing(time.perf_counter(), time.process_time())
    return self

  def __exit__(self, *exc_info):
    self.timing = Timing(time.perf_counter() - self._start.wall,
                         time.process_time() - self._start.cpu)


def median_timing(timings) -> Timing:
  """Median wall and median CPU seconds (each over `timings` on its own)."""
  if not timings:
    raise ValueError("No timings to take the median of.")
  return Timing(statistics.median(t.wall for t in timings),
                statistics.median(t.cpu for t in timings))


# The two speed columns of every benchmark table (`speed_cells`).
SPEED_COLUMNS = ("images/s", "images/CPU-s")


def speeds(images: float, timing: Timing) -> Timing:
  """Images per second (`wall`) and per CPU-second (`cpu`) in `timing`."""
  return Timing(*(images / max(seconds, 1e-12) for seconds in timing))


def speed_cells(images: float, timing: Timing, digits: int = 1):
  """`speeds` as table cells, (images/s, images/CPU-s)."""
  return tuple(f"{rate:.{digits}f}" for rate in speeds(images, timing))


def time_in_turns(calls: Dict[str, Callable], rounds: int = 3,
                  calls_per_round: int = 1, warmup: int = 1,
                  rounds_of: Optional[Dict[str, int]] = None):
  """Times zero-argument `calls` in turns; {name: [Timing per call]}.

  After `warmup` untimed calls of each (tracing, compilation, first-touch
  allocation), every round times `calls_per_round` calls of each call in
  turn, so a change in the machine's load reaches all of them alike; each
  round gives one Timing, per call. `rounds_of` caps the rounds of some
  calls (a slow eager baseline). A call must return something finished
  (arrays, not pending tensors).
  """
  rounds_of = rounds_of or {}
  for call in calls.values():
    for _ in range(warmup):
      call()
  times = {name: [] for name in calls}
  for round_ in range(rounds):
    for name, call in calls.items():
      if round_ >= rounds_of.get(name, rounds):
        continue
      with Stopwatch() as watch:
        for _ in range(calls_per_round):
          call()
      times[name].append(Timing(*(t / calls_per_round
                                  for t in watch.timing)))
  return times


def time_interleaved(steps: dict, images, rounds: int = 3,
                     steps_per_round: int = 1, warmup: int = 2):
  """{name: [Timing per step, one per round]} of training steps
  `fn(images, seed) -> loss`, interleaved (`time_in_turns`); round r, call
  s draws seed [r, s], the warm-up calls seed [0, 0]."""
  counters = {name: [0] for name in steps}

  def call(name):
    fn, counter = steps[name], counters[name]

    def run():
      index = max(counter[0] - warmup, 0)
      counter[0] += 1
      seed = tf.constant([index // steps_per_round, index % steps_per_round],
                         tf.int32)
      return fn(images, seed).numpy()

    return run

  return time_in_turns({name: call(name) for name in steps}, rounds,
                       steps_per_round, warmup)


class StepMeter:
  """Wraps a step function and times its calls after the first (tracing).

  `meter = StepMeter(trainer.train_step.train_step)`, put `meter` in its
  place, train; then `meter.calls` and `meter.timing` (summed over the
  timed calls). The step must finish before it returns (TF's synchronous
  eager execution: a tf.function call returns computed tensors).
  """

  def __init__(self, step: Callable):
    self.step = step
    self.calls = 0
    self.timing = Timing(0.0, 0.0)
    self._first_done = False

  def __call__(self, *args, **kwargs):
    if not self._first_done:
      self._first_done = True
      return self.step(*args, **kwargs)
    with Stopwatch() as watch:
      out = self.step(*args, **kwargs)
    self.calls += 1
    self.timing = Timing(*(a + b for a, b in zip(self.timing, watch.timing)))
    return out


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


def start_child(name: str, args, log_path: str, result_path: str):
  """Starts `python <args>` from the checkout's top, its output to
  `log_path`; `collect_rows` waits for it and reads `result_path`."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  log = open(log_path, "w")
  return name, result_path, log, subprocess.Popen(
      [sys.executable] + list(args), stdout=log, stderr=subprocess.STDOUT,
      cwd=top)


def collect_rows(children):
  """Waits for every `start_child` child; returns the JSON rows they wrote.

  Raises:
    RuntimeError: naming a child that failed and its log.
  """
  import json  # pylint: disable=g-import-not-at-top
  rows = []
  for name, result, log, child in children:
    if child.wait():
      raise RuntimeError(f"{name} failed; see {log.name}")
    log.close()
    with open(result) as f:
      rows.append(json.load(f))
  return rows
