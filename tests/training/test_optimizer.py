"""Tests of tfglv.training.optimizer: the schedule and the fused AdamW."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfglv import configs
from tfglv.training import optimizer as optimizer_lib


def train_config(**values):
  return configs.override(configs.get("tiny"),
                          {f"train.{k}": v for k, v in values.items()}).train


def test_schedule_warms_up_linearly_then_decays_per_update():
  schedule = optimizer_lib.WarmupExponentialDecay(1e-3, warmup_steps=4,
                                                  lr_decay=0.5)
  values = [float(schedule(step)) for step in range(7)]
  expected = [2.5e-4, 5e-4, 7.5e-4, 1e-3, 5e-4, 2.5e-4, 1.25e-4]
  np.testing.assert_allclose(values, expected, rtol=1e-6)


def test_schedule_without_warmup_and_round_trip():
  schedule = optimizer_lib.WarmupExponentialDecay(2e-3, 0, 0.999997)
  assert math.isclose(float(schedule(0)), 2e-3, rel_tol=1e-6)
  assert math.isclose(float(schedule(1000)), 2e-3 * 0.999997**1000,
                      rel_tol=1e-5)
  again = optimizer_lib.WarmupExponentialDecay.from_config(
      schedule.get_config())
  assert float(again(10)) == float(schedule(10))


@pytest.mark.parametrize("kwargs, message", [
    (dict(learning_rate=0.0, warmup_steps=1, lr_decay=0.9), "learning_rate"),
    (dict(learning_rate=1.0, warmup_steps=-1, lr_decay=0.9), "warmup_steps"),
    (dict(learning_rate=1.0, warmup_steps=1, lr_decay=1.5), "lr_decay"),
])
def test_schedule_rejects_bad_arguments(kwargs, message):
  with pytest.raises(ValueError, match=message):
    optimizer_lib.WarmupExponentialDecay(**kwargs)


def test_build_optimizer_reads_the_train_config():
  optimizer = optimizer_lib.build_optimizer(
      train_config(weight_decay="0.01", beta1="0.8", warmup_steps="3"))
  assert isinstance(optimizer, keras.optimizers.AdamW)
  assert optimizer.weight_decay == pytest.approx(0.01)
  assert optimizer.beta_1 == pytest.approx(0.8)
  assert optimizer.learning_rate.numpy() == pytest.approx(1e-3 / 3)
  with pytest.raises(ValueError, match="weight_decay"):
    optimizer_lib.build_optimizer(train_config(weight_decay="-1"))


def test_fused_update_equals_keras_adamw():
  config = train_config(weight_decay="0.05", warmup_steps="2",
                        lr_decay="0.9", learning_rate="0.01")

  def run(optimizer):
    weights = [keras.Variable(np.linspace(-1, 1, 6, dtype="float32")
                              .reshape(2, 3)),
               keras.Variable(np.full(4, 0.5, "float32"))]
    optimizer.build(weights)

    @tf.function
    def step(index):
      grads = [tf.sin(w * tf.cast(index + 1, tf.float32)) + 0.1
               for w in weights]
      optimizer.apply(grads, weights)

    for index in range(6):
      step(tf.constant(index))
    return [w.numpy() for w in weights], int(optimizer.iterations.numpy())

  fused, fused_updates = run(optimizer_lib.build_optimizer(config))
  reference, reference_updates = run(keras.optimizers.AdamW(
      learning_rate=optimizer_lib.learning_rate_schedule(config),
      weight_decay=config.weight_decay, beta_1=config.beta1,
      beta_2=config.beta2, epsilon=config.epsilon))
  assert fused_updates == reference_updates == 6
  for a, b in zip(fused, reference):
    # Same math; the fused kernel rounds differently in the last bits.
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
  assert not np.allclose(fused[1], 0.5)  # It moved.


def test_update_scalars_are_made_once_per_apply():
  config = train_config(weight_decay="0.05", learning_rate="0.01")

  def graph_of(num_variables):
    optimizer = optimizer_lib.build_optimizer(config)
    weights = [keras.Variable(np.full(3, 0.5, "float32"))
               for _ in range(num_variables)]
    optimizer.build(weights)
    function = tf.function(lambda: optimizer.apply(
        [tf.ones([3])] * num_variables, weights))
    graph = function.get_concrete_function().graph
    ops = [op for op in graph.get_operations()]
    for function_def in graph.as_graph_def().library.function:
      ops += list(function_def.node_def)
    return [getattr(op, "type", None) or op.op for op in ops]

  small, large = graph_of(2), graph_of(12)
  assert small.count("ResourceApplyAdam") == 2
  assert large.count("ResourceApplyAdam") == 12
  # The beta powers, epsilon's correction and the casts: once per apply.
  for op_type in ("Pow", "Sqrt", "Cast"):
    assert large.count(op_type) == small.count(op_type) > 0, op_type


def test_eager_and_graph_updates_are_identical():
  # The scalars are made per apply: eagerly, each update sees its step.
  config = train_config(weight_decay="0.05", warmup_steps="2",
                        learning_rate="0.01")

  def run(wrap):
    optimizer = optimizer_lib.build_optimizer(config)
    weights = [keras.Variable(np.linspace(-1, 1, 4, dtype="float32"))]
    optimizer.build(weights)
    step = wrap(lambda: optimizer.apply([tf.sin(weights[0]) + 0.1],
                                        weights))
    for _ in range(4):
      step()
    return weights[0].numpy()

  np.testing.assert_array_equal(run(lambda f: f), run(tf.function))


def _authors_adamw(param, grads, lr, weight_decay, beta1, beta2, epsilon):
  """PyTorch's AdamW update, written out in NumPy (float64)."""
  m = np.zeros_like(param)
  v = np.zeros_like(param)
  for t, g in enumerate(grads, start=1):
    param = param - lr * weight_decay * param
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    m_hat = m / (1 - beta1 ** t)
    v_hat = v / (1 - beta2 ** t)
    param = param - lr * m_hat / (np.sqrt(v_hat) + epsilon)
  return param


def test_epsilon_acts_as_the_authors_on_a_loss_in_other_units():
  # The same model trained on nats per image (the authors) and on bits/dim
  # (tfglv, gradients 1/scale as large) must take the same steps. The
  # gradients here are of the size where epsilon matters.
  scale = 3072 * np.log(2.0)
  rng = np.random.RandomState(0)
  nats_grads = [rng.normal(size=5) * 1e-7 for _ in range(4)]
  start = rng.normal(size=5)
  config = train_config(weight_decay="0.01", warmup_steps="0",
                        lr_decay="1.0", learning_rate="0.01")
  expected = _authors_adamw(start, nats_grads, 0.01, 0.01, 0.9, 0.999, 1e-8)
  weights = [keras.Variable(start.astype("float32"))]
  optimizer = optimizer_lib.build_optimizer(config, nats_per_loss_unit=scale)
  optimizer.build(weights)
  for g in nats_grads:
    optimizer.apply([tf.constant(g / scale, tf.float32)], weights)
  np.testing.assert_allclose(weights[0].numpy(), expected, rtol=0, atol=2e-6)
  # Keras's placement of epsilon on bits/dim gradients moves far less.
  plain = [keras.Variable(start.astype("float32"))]
  reference = keras.optimizers.AdamW(learning_rate=0.01, weight_decay=0.01,
                                     epsilon=1e-8)
  reference.build(plain)
  for g in nats_grads:
    reference.apply([tf.constant(g / scale, tf.float32)], plain)
  assert np.abs(plain[0].numpy() - expected).max() > 1e-3


def test_nats_per_loss_unit_must_be_positive():
  with pytest.raises(ValueError, match="nats_per_loss_unit"):
    optimizer_lib.build_optimizer(train_config(), nats_per_loss_unit=0.0)
