"""Dynamic loss scaling, for coupling networks that compute in float16.

float16 has bfloat16's precision and more, but only 5 exponent bits:
magnitudes below ~6e-8 flush to zero and above 65504 overflow. The trained
loss is bits/dim averaged over the batch, so the gradients that flow back
through the networks' float16 activations are tiny and many would vanish.
Dynamic loss scaling (Micikevicius et al., 2018, "Mixed Precision
Training") keeps them representable. With the scale S (a power of two):

    g = (d (S * loss) / d theta) / S     (exact: S is a power of two)
    g not finite: the update is skipped (`update_step.apply_or_skip`),
                  S = max(S / 2, 1), good = 0
    g finite:     the update is applied, good += 1; after `growth_steps`
                  finite steps in a row S = min(2 S, 2^24), good = 0

The gradients are unscaled before anything else reads them (their
all-reduce, norm, clipping and the optimizer see the same numbers as
without scaling), so a step whose float16 backward pass overflowed is just
a non-finite step, skipped and counted like any other.

S and `good` are optimizer variables (`optimizer.add_variable`), saved with
the optimizer's state in every checkpoint and `.keras` file, so a resumed
run continues with the scale it stopped at. Only float16 needs them:
bfloat16 has float32's exponent range, and `for_model` returns None for
float32 and bfloat16 networks (their checkpoints hold no such variables).
"""

import math
from typing import Optional, Sequence

import keras
import tensorflow as tf

# Keras's LossScaleOptimizer defaults: start at 2^15, double after 1000
# finite steps in a row.
INITIAL_SCALE = 2.0 ** 15
GROWTH_STEPS = 1000
MAX_SCALE = 2.0 ** 24
# Where an optimizer keeps its DynamicLossScale (one per optimizer).
_ATTRIBUTE = "_tfglv_loss_scale"


class DynamicLossScale:
  """The loss scale S of one optimizer (see the module docstring).

  Args:
    optimizer: a built Keras optimizer; S and the count of good steps
      become its variables. Create under the strategy's scope.
    initial_scale: S at the first step, a power of two >= 1.
    growth_steps: finite steps in a row after which S doubles, >= 1.
  """

  def __init__(self, optimizer, initial_scale: float = INITIAL_SCALE,
               growth_steps: int = GROWTH_STEPS):
    if not 1.0 <= initial_scale <= MAX_SCALE or \
        math.frexp(initial_scale)[0] != 0.5:
      raise ValueError(f"initial_scale must be a power of two in [1, "
                       f"{MAX_SCALE:g}]; got {initial_scale}.")
    if isinstance(growth_steps, bool) or not isinstance(growth_steps, int) \
        or growth_steps < 1:
      raise ValueError(f"growth_steps must be an int >= 1; got "
                       f"{growth_steps!r}.")
    self.growth_steps = growth_steps
    self.scale = optimizer.add_variable(
        shape=(), initializer=keras.initializers.Constant(initial_scale),
        dtype="float32", aggregation="only_first_replica", name="loss_scale")
    self.good_steps = optimizer.add_variable(
        shape=(), initializer="zeros", dtype="int64",
        aggregation="only_first_replica", name="loss_scale_good_steps")

  def gradients(self, tape: tf.GradientTape, loss, variables: Sequence):
    """d loss / d variables, computed through S * loss, then divided by S.

    The scale enters as the tape's output gradient, so nothing is added to
    the forward pass.
    """
    scale = tf.convert_to_tensor(self.scale)
    grads = tape.gradient(loss, variables,
                          output_gradients=tf.cast(scale, loss.dtype))
    return [None if g is None else g * tf.cast(1.0 / scale, g.dtype)
            for g in grads]

  def update(self, finite) -> None:
    """After a step: halve S if `finite` is false, else count the step and
    double S after `growth_steps` in a row. Call in cross-replica context
    (every replica sees the same new S)."""
    scale = tf.convert_to_tensor(self.scale)
    good = tf.convert_to_tensor(self.good_steps) + 1
    grow = tf.logical_and(finite, good >= self.growth_steps)
    self.scale.assign(tf.where(
        finite, tf.where(grow, tf.minimum(2.0 * scale, MAX_SCALE), scale),
        tf.maximum(0.5 * scale, 1.0)))
    self.good_steps.assign(tf.where(
        tf.logical_and(finite, tf.logical_not(grow)), good,
        tf.zeros_like(good)))


def needs_scaling(model) -> bool:
  """Whether `model`'s coupling networks compute in float16."""
  config = getattr(model, "config", None)
  decoder = getattr(config, "decoder", None)
  return getattr(decoder, "compute_dtype", "float32") == "float16"


def for_model(model, optimizer, strategy=None
              ) -> Optional[DynamicLossScale]:
  """The loss scale of training `model` with `optimizer`: None unless the
  model's networks compute in float16. One per optimizer: a second call
  returns the first one's (its variables are made once, under `strategy`'s
  scope, default the current strategy)."""
  if not needs_scaling(model):
    return None
  existing = optimizer.__dict__.get(_ATTRIBUTE)
  if existing is None:
    with (strategy or tf.distribute.get_strategy()).scope():
      existing = DynamicLossScale(optimizer)
    object.__setattr__(optimizer, _ATTRIBUTE, existing)
  return existing
