"""Free bits and KL warm-up (tfglv.kl_budget): they change what training
differentiates, never the reported bound."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import flow_checks
import tfglv
import train_testlib
from tfglv import kl_budget
from tfglv import training
from tfglv import update_step
from tfglv.data import synthetic

SEED = 3


def _model(variant="glvae", count=8):
  config = tfglv.configs.get("tiny", model=variant)
  model = tfglv.build_model(config)
  images = tf.constant(synthetic.generate(count, 16, 3, seed=1)["image"])
  model.initialize(images)
  model.run_eagerly = True  # A few calls each: tracing would cost more.
  # Off the zero-initialised last layers, so every variable has a gradient.
  flow_checks.perturb(model.trainable_variables, stddev=0.03)
  return model, images


def _update(model, images, budget, step=0):
  """(gradients, reported metrics) of the trainer's update."""
  grads, finite, metrics = update_step.replica_gradients(
      model, images, step, model.trainable_variables, seed=SEED,
      global_batch_size=len(images), kl_budget=budget)
  assert bool(finite)
  return [g.numpy() for g in grads], {k: float(v) for k, v in metrics.items()}


def _reference(model, images, objective, step=0):
  """Gradients of objective(losses) (a scalar) at the update's noise."""
  seed = update_step.step_seed(SEED, step, 0, 0)
  with tf.GradientTape() as tape:
    losses = model.compute_losses(images, seed, training=True)
    value = objective(losses)
  grads = tape.gradient(value, model.trainable_variables)
  return [np.zeros(v.shape) if g is None else g.numpy()
          for g, v in zip(grads, model.trainable_variables)], losses


def _assert_close(actual, expected):
  for a, e in zip(actual, expected):
    np.testing.assert_allclose(a, e, rtol=2e-4, atol=1e-7)


def _encoder_differs(model, a, b):
  encoder = {id(v) for v in model.encoder.trainable_variables}
  return any(not np.allclose(x, y, rtol=1e-3, atol=1e-6)
             for v, x, y in zip(model.trainable_variables, a, b)
             if id(v) in encoder)


@pytest.fixture(scope="module")
def tiny_model():
  return _model()


def test_group_terms_sum_to_the_kl(tiny_model):
  model, images = tiny_model
  losses = model.compute_losses(images, [1, 2], num_samples=3)
  parts = losses["kl_parts"]
  assert parts.shape == (8, model.latent_dim + 1)
  for groups in (1, 2, 4, 8):
    per_group = kl_budget.group_kl(parts, groups)
    assert per_group.shape == (8, groups)
    np.testing.assert_allclose(tf.reduce_sum(per_group, -1), losses["kl"],
                               rtol=1e-5, atol=1e-9)
  # G = d_z: each group is one dimension plus 1/d_z of the rest.
  np.testing.assert_allclose(
      kl_budget.group_kl(parts, 8),
      parts[:, :8] + parts[:, 8:] / 8.0, rtol=1e-6)
  with pytest.raises(ValueError, match="must divide d_z = 8; got 3"):
    kl_budget.group_kl(parts, 3)


def test_per_dimension_terms_estimate_the_analytic_kl(tiny_model):
  # E_q[log q_d(z_d|x) - log N(z_d; 0, 1)] = KL(N(mu_d, s_d^2) || N(0, 1)).
  model, images = tiny_model
  code = model.global_code
  x = tf.random.stateless_uniform([4, 16, 16, 3], [4, 5], -1.0, 1.0)
  head = model.encoder.head
  saved = head.length.numpy()
  head.length.assign(saved * 100.0)  # A posterior far from N(0, I).
  try:
    mean, log_variance = code.posterior(x)
    _, parts = code.nll_and_kl(model.decoder.bijector, x, tf.constant([6, 7]),
                               False, 256, dict(initializing=False,
                                                cached=False))
  finally:
    head.length.assign(saved)
  analytic = 0.5 * (tf.square(mean) + tf.exp(log_variance) - 1.0 -
                    log_variance)
  estimate = tf.reduce_mean(parts[..., :-1], axis=0)  # Over the 256 draws.
  assert float(tf.reduce_mean(analytic)) > 0.3  # Far from N(0, I) indeed.
  # The estimate's standard error is ~4% of the sum here.
  np.testing.assert_allclose(tf.reduce_sum(estimate),
                             tf.reduce_sum(analytic), rtol=0.15)


def test_warmup_weight_ramps_linearly_from_step_zero():
  weights = [float(kl_budget.warmup_weight(step, 4)) for step in range(6)]
  assert weights == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
  assert float(kl_budget.warmup_weight(tf.constant(7, tf.int64), 0)) == 1.0


def test_free_bits_over_every_group_leave_only_the_nll(tiny_model):
  model, images = tiny_model
  plain, reported = _update(model, images, None)
  # 1000 bits per dimension: every group is under its budget.
  budget = kl_budget.KLBudget(free_bits=1000.0, free_bits_groups=8)
  free, reported_free = _update(model, images, budget)
  expected, _ = _reference(
      model, images, lambda l: tf.reduce_sum(l["nll"]) / len(images))
  _assert_close(free, expected)
  assert reported_free["loss"] == reported["loss"]  # The true bound.
  assert reported_free["kl"] == reported["kl"] != 0.0
  assert _encoder_differs(model, free, plain)
  # The prior enters only the KL term, which passes no gradient now.
  prior = {id(v) for v in model.prior.trainable_variables}
  assert all(not np.any(g) for v, g in zip(model.trainable_variables, free)
             if id(v) in prior)


def test_free_bits_keep_the_groups_over_their_budget(tiny_model):
  model, images = tiny_model
  groups = 4
  losses = model.compute_losses(images, update_step.step_seed(SEED, 0, 0, 0),
                                training=True)
  group_means = tf.reduce_mean(kl_budget.group_kl(losses["kl_parts"], groups),
                               axis=0).numpy()
  # Bits per z dimension of each group's mean KL; the budget between them.
  per_dimension = group_means * model.num_dims / (model.latent_dim / groups)
  free_bits = float(np.median(per_dimension))
  over = per_dimension > free_bits
  assert 0 < over.sum() < groups
  budget = kl_budget.KLBudget(free_bits=free_bits, free_bits_groups=groups)
  free, reported = _update(model, images, budget)

  def objective(l):
    kept = tf.boolean_mask(kl_budget.group_kl(l["kl_parts"], groups), over,
                           axis=1)
    return (tf.reduce_sum(l["nll"]) + tf.reduce_sum(kept)) / len(images)

  expected, _ = _reference(model, images, objective)
  _assert_close(free, expected)
  np.testing.assert_allclose(reported["loss"],
                             float(tf.reduce_mean(losses["loss"])), rtol=1e-6)


def test_kl_warmup_weighs_the_kl_term(tiny_model):
  model, images = tiny_model
  plain, reported = _update(model, images, None, step=1)
  budget = kl_budget.KLBudget(kl_warmup_steps=4)
  warm, reported_warm = _update(model, images, budget, step=1)
  expected, _ = _reference(
      model, images,
      lambda l: tf.reduce_sum(l["nll"] + 0.5 * l["kl"]) / len(images), step=1)
  _assert_close(warm, expected)
  for key in ("loss", "nll", "kl"):  # The gradient norm is the new one's.
    assert reported_warm[key] == reported[key]
  assert _encoder_differs(model, warm, plain)
  # From step N - 1 on, the plain objective.
  _assert_close(_update(model, images, budget, step=3)[0],
                _update(model, images, None, step=3)[0])


@pytest.mark.parametrize("field,value,message", [
    ("train.free_bits", "-0.5", r"train.free_bits must be a finite number >= 0"
     r" \(bits per z dimension; 0 turns free bits off\); got -0.5"),
    ("train.kl_warmup_steps", "-1", r"train.kl_warmup_steps must be an "
     r"integer in \[0, 2147483647\] \(steps of the linear KL warm-up; 0 turns "
     r"it off\); got -1"),
    ("train.free_bits_groups", "3", r"train.free_bits_groups must be >= 1 and"
     r" divide model.latent_dim 8 .*allowed: 1, 2, 4, 8; got 3"),
    ("train.free_bits_groups", "0", r"allowed: 1, 2, 4, 8; got 0"),
])
def test_bad_values_name_the_field_and_the_allowed_ones(field, value,
                                                         message):
  with pytest.raises(ValueError, match=message):
    tfglv.configs.validate(tfglv.configs.override(tfglv.configs.get("tiny"),
                                                  {field: value}))


def test_the_knobs_are_refused_without_z_and_accepted_with_it():
  for field, value in (("free_bits", "0.5"), ("kl_warmup_steps", "10"),
                       ("free_bits_groups", "2")):
    with pytest.raises(ValueError, match=(
        r"act on the KL term of the global code z, and model variant 'glow' "
        r"has no z: leave them at 0, 1 and 0")):
      tfglv.configs.get("tiny", model="glow", **{f"train__{field}": value})
  config = tfglv.configs.get("tiny", train__free_bits=0.5,
                             train__free_bits_groups=8,
                             train__kl_warmup_steps=100)
  assert kl_budget.make(config.train, 8) == kl_budget.KLBudget(0.5, 8, 100)
  assert kl_budget.make(tfglv.configs.get("tiny").train, 8) is None


def test_keras_compile_checks_the_knobs_too():
  glvae = tfglv.build_model(tfglv.configs.get("tiny"))
  with pytest.raises(ValueError, match=r"^free_bits must be a finite number"):
    glvae.compile(free_bits=-1.0)
  with pytest.raises(ValueError, match=r"^kl_warmup_steps must be an integer"):
    glvae.compile(kl_warmup_steps=2.5)
  glvae.compile(free_bits=0.25, free_bits_groups=4, kl_warmup_steps=10)
  config = glvae.get_compile_config()
  assert (config["free_bits"], config["free_bits_groups"],
          config["kl_warmup_steps"]) == (0.25, 4, 10)
  glow = tfglv.build_model(tfglv.configs.get("tiny", model="glow"))
  with pytest.raises(ValueError, match="model variant 'glow' has no z"):
    glow.compile(kl_warmup_steps=5)


def test_a_free_bits_budget_is_in_bits_per_z_dimension():
  # lambda_g = lambda * d_z / G bits per image, / D in the loss's bits/dim.
  parts = tf.constant([[0.0, 0.0, 0.0, 0.0, 0.0]])  # d_z = 4, KL 0.
  losses = {"nll": tf.constant([1.0]), "kl": tf.constant([0.0]),
            "kl_parts": parts}
  budget = kl_budget.KLBudget(free_bits=2.0, free_bits_groups=2)
  value = kl_budget.replica_objective(losses, budget, 0, num_dims=16,
                                      batch_size=1)
  assert math.isclose(float(value), 1.0 + 2.0 * 4 / 16, rel_tol=1e-6)


def _train(tmp_path, name, **knobs):
  config = train_testlib.tiny(train_testlib.FAST_QUIET, train__num_steps=2,
                              **knobs)
  return training.train_and_evaluate(config, str(tmp_path / name))


# 8 bits per z dimension, 64 bits per image: every group starts under it, so
# the objective is ~0.08 bits/dim above the bound (768 values per image).
_KNOBS = {"train__free_bits": 8.0, "train__free_bits_groups": 4,
          "train__kl_warmup_steps": 3}


def _check_reports_the_bound(summary):
  history = summary["train_history"]
  assert [h["step"] for h in history] == [1, 2]
  for record in history + summary["evaluations"][-1:]:
    assert math.isfinite(record["bpd"])
    assert math.isclose(record["bpd"], record["nll"] + record["kl"],
                        rel_tol=1e-6)
  return history


@pytest.mark.filterwarnings(train_testlib.TF_DATA_OPTIONS_WARNING)
def test_a_free_bits_run_of_the_trainer_logs_the_bound(tmp_path):
  _check_reports_the_bound(_train(tmp_path, "free_bits", **_KNOBS))


@pytest.mark.slow
@pytest.mark.filterwarnings(train_testlib.TF_DATA_OPTIONS_WARNING)
def test_the_trainer_logs_the_plain_runs_bound_under_the_knobs(tmp_path):
  # Same seed, data and initialisation: the first step reports what the
  # plain run reports, the next differ since the updates did.
  free = _check_reports_the_bound(_train(tmp_path, "free_bits", **_KNOBS))
  plain = _check_reports_the_bound(_train(tmp_path, "plain"))
  for key in ("bpd", "nll", "kl"):
    assert free[0][key] == plain[0][key]
  assert free[1]["bpd"] != plain[1]["bpd"]


_TWO_REPLICAS = """
import numpy as np
import tensorflow as tf
from tfglv.training import distribute
distribute.configure_cpu_devices(2)
import flow_checks
import tfglv
from tfglv import kl_budget, update_step

strategy = distribute.create_strategy("mirrored")
assert strategy.num_replicas_in_sync == 2
groups, seed = 4, 3
images = np.random.RandomState(0).randint(0, 256, (8, 16, 16, 3)).astype(
    np.uint8)
with strategy.scope():
  model = tfglv.build_model(tfglv.configs.get("tiny"))
  model.initialize(images)
  flow_checks.perturb(model.trainable_variables, stddev=0.03)
variables = model.trainable_variables
batch = next(iter(strategy.experimental_distribute_dataset(
    tf.data.Dataset.from_tensors(images))))
local = lambda values: strategy.experimental_local_results(values)

def losses_of(x):
  replica = tf.distribute.get_replica_context().replica_id_in_sync_group
  return model.compute_losses(x, update_step.step_seed(seed, 0, replica),
                              training=True)

@tf.function
def group_sums(x):
  return strategy.run(lambda x: tf.reduce_sum(kl_budget.group_kl(
      losses_of(x)["kl_parts"], groups), 0), args=(x,))

sums = [s.numpy() for s in local(group_sums(batch))]
global_mean, local_mean = (sums[0] + sums[1]) / 8, sums[0] / 4
# A budget between replica 0's mean and the global mean of one group: the
# two would decide differently whether it is over budget.
g = int(np.argmax(np.abs(global_mean - local_mean)))
floor = 0.5 * (global_mean[g] + local_mean[g])
mask = global_mean > floor
assert mask[g] != (local_mean[g] > floor)
free_bits = floor * model.num_dims / (model.latent_dim / groups)
budget = kl_budget.KLBudget(free_bits=float(free_bits),
                            free_bits_groups=groups)

@tf.function
def free_bits_gradients(x):
  return strategy.run(lambda x: update_step.replica_gradients(
      model, x, 0, variables, seed=seed, global_batch_size=8,
      kl_budget=budget)[0], args=(x,))

def reference(masks):
  @tf.function
  def run(x):
    def replica(x):
      context = tf.distribute.get_replica_context()
      keep = tf.gather(masks, context.replica_id_in_sync_group)
      with tf.GradientTape() as tape:
        losses = losses_of(x)
        kept = tf.boolean_mask(kl_budget.group_kl(losses["kl_parts"], groups),
                               keep, axis=1)
        loss = (tf.reduce_sum(losses["nll"]) + tf.reduce_sum(kept)) / 8
      return [context.all_reduce("sum", g)
              for g in tape.gradient(loss, variables)]
    return strategy.run(replica, args=(x,))
  return [local(g)[0].numpy() for g in run(batch)]

got = [local(g)[0].numpy() for g in free_bits_gradients(batch)]
for a, b in zip(got, reference(tf.constant([mask, mask]))):
  np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-7)
# Deciding per replica gives another update.
per_replica = tf.constant([mask, sums[1] / 4 > floor])
per_replica = tf.tensor_scatter_nd_update(per_replica, [[0, g]],
                                          [bool(local_mean[g] > floor)])
assert not all(np.allclose(a, b, rtol=2e-4, atol=1e-7)
               for a, b in zip(got, reference(per_replica)))
print("two replicas ok")
"""


@pytest.mark.slow
def test_free_bits_average_over_the_global_batch_of_two_replicas():
  run = subprocess.run(
      [sys.executable, "-c", _TWO_REPLICAS], cwd=train_testlib.REPO,
      capture_output=True, text=True, timeout=900,
      env=dict(os.environ, PYTHONPATH=os.pathsep.join(
          [train_testlib.REPO, os.path.join(train_testlib.REPO, "tests")])))
  assert run.returncode == 0, run.stderr[-4000:]
  assert "two replicas ok" in run.stdout
