"""Shared blocks: one traced function per kind, the inline results bit for bit."""

import contextlib

import numpy as np
import pytest
import tensorflow as tf

from tfglv import _compat
from tfglv import flows
from tfglv.flows import shared
import flow_checks

# Two repeated steps per level and a prior block: 7 blocks of 4 kinds, of
# which the prior block, the only one of its kind, runs inline: 6 calls of
# 3 functions.
_NUM_CALLS, _NUM_KINDS = 6, 3


def _flow():
  layer = flows.MultiScaleFlowLayer(
      image_shape=(4, 4, 2), num_steps=[2, [2], 2], hidden_channels=[3, 3, 3],
      condition_dim=2)
  flow_checks.perturb(layer.trainable_variables, stddev=0.1)
  return layer


def _inputs():
  x = tf.random.stateless_normal([3, 4, 4, 2], [1, 2])
  z = tf.random.stateless_normal([3, 2], [3, 4])
  return x, z


def _in_graph(layer, direction, x, z, inline):
  """Output, log-det and the gradients of a loss, from one tf.function."""

  def run(x, z):
    with tf.GradientTape() as tape:
      tape.watch([x, z])
      method = getattr(layer.make_bijector(), f"{direction}_and_log_det")
      y, log_det = method(x, z=z)
      loss = tf.reduce_sum(tf.square(y)) + tf.reduce_sum(log_det)
    return [y, log_det] + tape.gradient(loss,
                                        [x, z] + layer.trainable_variables)

  # The rewrites that change floats (fusions, reassociated sums) are off,
  # as for the compiled inference: each path then runs its ops as written.
  with contextlib.ExitStack() as stack:
    stack.enter_context(_compat.graph_rewrites_off(
        "remapping", "arithmetic_optimization", "constant_folding"))
    if inline:
      stack.enter_context(shared.inlined())
    return [t.numpy() for t in tf.function(run, autograph=False)(x, z)]


@pytest.mark.parametrize("direction", ["forward", "inverse"])
def test_shared_blocks_equal_inline_blocks_bit_for_bit(direction):
  layer = _flow()
  x, z = _inputs()
  inline = _in_graph(layer, direction, x, z, inline=True)
  assert shared.tracing_count(layer) == 0
  traced = _in_graph(layer, direction, x, z, inline=False)
  assert shared.tracing_count(layer) == _NUM_KINDS
  assert len(traced) == len(inline) == 4 + len(layer.trainable_variables)
  y, log_det, dx, dz, *dweights = traced
  y_, log_det_, dx_, dz_, *dweights_ = inline
  for a, b in zip([y, log_det, dx] + dweights, [y_, log_det_, dx_] + dweights_):
    np.testing.assert_array_equal(a, b)
  # z enters every block: its gradient adds up per block first, then over
  # blocks, which may round the last bit differently.
  np.testing.assert_allclose(dz, dz_, rtol=1e-6, atol=1e-6)
  # Every weight got a gradient: each block read its own variables.
  assert all(np.any(g != 0) for g in traced[4:])


def test_each_kind_is_traced_once():
  layer = _flow()
  x, z = _inputs()

  @tf.function(autograph=False)
  def run(x, z):
    return layer.make_bijector().forward_and_log_det(x, z=z)

  graph = run.get_concrete_function(x, z).graph
  calls = [op for op in graph.get_operations()
           if op.type in ("PartitionedCall", "StatefulPartitionedCall")]
  assert len(calls) == _NUM_CALLS
  assert len({op.get_attr("f").name for op in calls}) == _NUM_KINDS
  assert shared.tracing_count(layer) == _NUM_KINDS
  run.get_concrete_function(tf.identity(x), z)  # A retrace traces no kind.
  assert shared.tracing_count(layer) == _NUM_KINDS


def test_eager_calls_and_initialisation_run_inline():
  layer = _flow()
  x, z = _inputs()
  eager = layer.make_bijector().forward_and_log_det(x, z=z)
  assert shared.tracing_count(layer) == 0
  graph = tf.function(lambda x, z: layer.make_bijector().forward_and_log_det(
      x, z=z))(x, z)
  np.testing.assert_allclose(graph[0], eager[0], atol=1e-5)
  initializing = shared.block(layer, layer.level_steps[0][0][0],
                              initializing=True)
  assert not isinstance(initializing, shared.SharedBlock)


def test_a_block_alone_of_its_kind_runs_inline():
  layer = _flow()
  peers = layer.blocks()
  assert len(peers) == 7
  prior = layer.level_priors[1][0]
  step = layer.level_steps[1][0][0]
  assert not isinstance(shared.block(layer, prior, peers=peers),
                        shared.SharedBlock)
  assert isinstance(shared.block(layer, step, peers=peers), shared.SharedBlock)
  # Without peers every block is shared (a caller that cannot count), and
  # so is every block at inference (cached), which traces many signatures.
  assert isinstance(shared.block(layer, prior), shared.SharedBlock)
  assert isinstance(shared.block(layer, prior, peers=peers, cached=True),
                    shared.SharedBlock)
