"""Shared pieces of the benchmarks: models, train steps, timing, tables.

Every benchmark builds its models here so that tfglv and its peer
(`tfp.bijectors.Glow`) are trained by the same step function, with the same
optimizer, in the same process. Timing interleaves the models round by
round: on a shared 2-core machine the load moves during a run, and
interleaving makes the printed ratios robust to it.
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

import tfglv

tfb, tfd = tfp.bijectors, tfp.distributions
CIFAR = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data",
                     "cifar10_subset.npz")

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
  return tfglv.configs.get(SIZES[size]["name"]).decoder.hidden_channels[-1]


def load_images(count: int, image_size: int = 32, seed: int = 0):
  """uint8 [count, H, W, 3]: the CIFAR-10 subset if present, else noise."""
  if image_size == 32 and os.path.exists(CIFAR):
    with np.load(CIFAR) as data:
      return tf.constant(data["x_train"][:count])
  rng = np.random.RandomState(seed)
  return tf.constant(rng.randint(0, 256, (count, image_size, image_size, 3)),
                     tf.uint8)


def num_params(variables) -> int:
  return int(sum(np.prod(v.shape) for v in variables))


def build_tfglv(size: str, variant: str, parameterization: str = "full",
                compute_dtype: str = "float32", init_images=None):
  spec = SIZES[size]
  overrides = dict(spec["overrides"])
  overrides["decoder.compute_dtype"] = compute_dtype
  overrides["decoder.conv1x1"] = parameterization
  config = tfglv.configs.override(
      tfglv.configs.get(spec["name"], model=variant), overrides)
  model = tfglv.build_model(config)
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
  """`tfp.bijectors.Glow` as a density over dequantised uint8 images."""

  def __init__(self, num_steps_per_block: int, hidden: int):
    self.num_steps_per_block = num_steps_per_block
    self.hidden = hidden
    self.bijector = _tfp_glow(num_steps_per_block, hidden)
    self.distribution = tfd.TransformedDistribution(
        tfd.Sample(tfd.Normal(0.0, 1.0), [32 * 32 * 3]), self.bijector)
    # Creates the lazily built variables (ActNorm) with a first call.
    self.distribution.log_prob(tf.zeros([1, 32, 32, 3]))

  @property
  def trainable_variables(self):
    return list(self.bijector.trainable_variables)

  def compute_losses(self, images, seed, training=True):
    del training
    x = tf.cast(images, tf.float32)
    noise = tf.random.stateless_uniform(tf.shape(x), seed)
    x = (x + noise) * (2.0 / 256.0) - 1.0
    num_dims = 32 * 32 * 3
    nll = -self.distribution.log_prob(x) + num_dims * np.log(128.0)
    return {"loss": nll / (num_dims * np.log(2.0))}


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


def make_optimizer():
  """The optimizer of every benchmarked model (AdamW as in DESIGN 5)."""
  return keras.optimizers.AdamW(learning_rate=1e-4, weight_decay=1e-6)


def make_train_step(model, optimizer, jit_compile: bool = False,
                    batch_size: int = 16):
  """A compiled step: loss, gradients, AdamW update; returns the loss."""
  variables = list(model.trainable_variables)
  optimizer.build(variables)

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
