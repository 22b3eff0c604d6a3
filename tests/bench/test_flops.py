"""bench.flops: the step's convolutions and matmuls, found and replayed alone."""

import collections

import tensorflow as tf

from bench import flops


def _step():
  """A step with a matmul and a 3x3 convolution, called twice through one
  function (as the shared flow blocks are), and their gradients."""
  kernel = tf.Variable(tf.random.stateless_normal([3, 3, 4, 6], [1, 2]))
  matrix = tf.Variable(tf.random.stateless_normal([6, 5], [3, 4]))

  @tf.function(autograph=False)
  def block(x):
    h = tf.nn.conv2d(x, kernel, 1, "SAME")
    return tf.matmul(tf.reshape(h, [-1, 6]), matrix)

  @tf.function(autograph=False)
  def step(x):
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(block(x)) + tf.reduce_sum(block(2.0 * x))
    return tape.gradient(loss, [kernel, matrix])

  return step.get_concrete_function(tf.TensorSpec([2, 8, 8, 4], tf.float32))


def test_kernels_are_counted_per_call_with_static_shapes():
  kernels = collections.Counter()
  per_type = flops.graph_flops(_step(), kernels)
  by_type = collections.Counter()
  for spec, count in kernels.items():
    by_type[spec.op_type] += count
  # Forward: a conv and a matmul per call; backward: the matmul's two
  # gradients and the conv's two (a function's gradient differentiates all
  # its inputs, x too), per call.
  assert by_type == {"Conv2D": 2, "MatMul": 6, "Conv2DBackpropFilter": 2,
                     "Conv2DBackpropInput": 2}
  assert sum(spec.flops * count for spec, count in kernels.items()) == sum(
      per_type[t] for t in by_type)
  conv = next(s for s in kernels if s.op_type == "Conv2D")
  assert conv.flops == 2 * 2 * 8 * 8 * 3 * 3 * 4 * 6
  shapes = {name: shape for name, _, shape in conv.inputs}
  assert shapes == {"input": (2, 8, 8, 4), "filter": (3, 3, 4, 6)}


def test_every_kernel_replays_alone():
  kernels = collections.Counter()
  flops.graph_flops(_step(), kernels)
  for spec in kernels:
    timing = flops.kernel_seconds(spec, min_seconds=0.001)
    assert 0 < timing.wall < 1.0, spec
