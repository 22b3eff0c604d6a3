"""Hardware efficiency of a training step: FLOPs vs measured matmul peak.

    python -m bench.flops --sizes=small,full

FLOPs of one training step come from TensorFlow's own op statistics
(`flops` registered for Conv2D, Conv2DBackpropInput/Filter, MatMul, ...)
over the traced train-step graph, so forward and backward are both counted
exactly as the step runs them. The machine's peak is the best of a few
large `tf.matmul`s in float32 and bfloat16, measured in the same run (the
load of other processes lowers both alike). Utilisation = step FLOPs /
step time / peak of the dtype the coupling networks compute in.
"""

import collections
import time

from absl import app
from absl import flags

from bench import harness  # pylint: disable=g-bad-import-order
import tensorflow as tf

from tfglv import _compat

flags.DEFINE_list("sizes", ["small", "full"], "Sizes to run.")
flags.DEFINE_list("variants", ["glvae", "glvae_bf16", "glvae_lu",
                               "glow", "tfp_glow"],
                  "Rows (see bench.train_throughput).")
flags.DEFINE_integer("rounds", 3, "Timed rounds per model (median).")
flags.DEFINE_integer("matmul_size", 2048, "n of the n x n peak matmul.")
flags.DEFINE_enum("step", "trainer", harness.STEPS, harness.STEP_HELP)
flags.DEFINE_enum("optimizer", "tfglv", harness.OPTIMIZERS,
                  harness.OPTIMIZER_HELP)
flags.DEFINE_string("npz", "", harness.npz_help())
FLAGS = flags.FLAGS


def graph_flops(concrete_function):
  """{op type: FLOPs} of a traced function, from TF's registered stats."""
  graph = concrete_function.graph
  per_type = collections.Counter()

  def visit(g):
    for op in g.get_operations():
      try:
        stats = _compat.op_statistic(g, op.node_def, "flops")
      except ValueError:  # the statistic needs shapes this op lacks
        stats = None
      if stats is not None and stats.value:
        per_type[op.type] += stats.value
    for function in _compat.graph_functions(g):
      if hasattr(function, "graph"):
        visit(function.graph)

  visit(graph)
  return per_type


def matmul_peak(dtype, n, repeats=5):
  """Best GFLOP/s of an n x n x n matmul in `dtype` (2 n^3 FLOPs)."""
  a = tf.cast(tf.random.stateless_normal([n, n], [1, 2]), dtype)
  b = tf.cast(tf.random.stateless_normal([n, n], [3, 4]), dtype)
  matmul = tf.function(tf.matmul)
  matmul(a, b).numpy()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    matmul(a, b).numpy()
    best = min(best, time.perf_counter() - start)
  return 2 * n**3 / best / 1e9


def run_size(size, peaks):
  images = harness.load_images(16, npz=FLAGS.npz)
  init_images = harness.load_images(64, npz=FLAGS.npz)
  steps, flops, dtypes = {}, {}, {}
  for name in FLAGS.variants:
    if name == "tfp_glow":
      reference = harness.build_tfglv(size, "glvae")
      model = harness.matched_tfp_glow(
          harness.num_params(reference.trainable_variables),
          harness.hidden_width(size))
      jit, dtype = False, "float32"
    else:
      parts = name.split("_")
      dtype = "bfloat16" if "bf16" in parts else "float32"
      model = harness.build_tfglv(size, parts[0],
                                  "lu" if "lu" in parts else "full", dtype,
                                  init_images=init_images)
      jit = "xla" in parts
    # FLOPs from the plain step's graph (the trainer's step adds only
    # element-wise work: the gradient norm and finite check); time from the
    # step of --step.
    plain = harness.make_train_step(
        model, harness.make_optimizer(FLAGS.optimizer), jit, kind="plain")
    concrete = plain.get_concrete_function(images,
                                           tf.constant([0, 0], tf.int32))
    per_type = graph_flops(concrete)
    flops[name] = (sum(per_type.values()), per_type)
    steps[name] = plain if jit else harness.step_for(
        model, FLAGS.step, FLAGS.optimizer)
    dtypes[name] = dtype
  times = harness.time_interleaved(steps, images, FLAGS.rounds)
  rows = []
  for name in steps:
    seconds = sorted(times[name])[len(times[name]) // 2]
    total, per_type = flops[name]
    conv = sum(v for k, v in per_type.items() if k.startswith("Conv2D"))
    rate = total / seconds / 1e9
    rows.append((name, f"{total / 1e9:.1f}", f"{100 * conv / total:.1f}",
                 f"{seconds:.2f}", f"{rate:.1f}",
                 f"{100 * rate / peaks['float32']:.1f}",
                 f"{100 * rate / peaks[dtypes[name]]:.1f}"))
  harness.print_table(
      f"Training step FLOPs (batch 16, fwd+bwd, TF op stats), size {size!r}, "
      f"{FLAGS.step} step; "
      f"matmul peak float32 {peaks['float32']:.1f}, bfloat16 "
      f"{peaks['bfloat16']:.1f} GFLOP/s; {harness.load_average()}",
      ("model", "GFLOP/step", "% in convs", "s/step", "GFLOP/s",
       "% of f32 peak", "% of own-dtype peak"), rows)


def main(argv):
  del argv
  peaks = {"float32": matmul_peak(tf.float32, FLAGS.matmul_size),
           "bfloat16": matmul_peak(tf.bfloat16, FLAGS.matmul_size)}
  for size in FLAGS.sizes:
    run_size(size, peaks)
    # Re-measure: the load may have moved while the models ran.
    peaks = {k: max(v, matmul_peak(tf.as_dtype(k), FLAGS.matmul_size))
             for k, v in peaks.items()}
  harness.print_table("Matmul peak (best over the run), GFLOP/s",
                      ("dtype", "GFLOP/s"),
                      [(k, f"{v:.1f}") for k, v in peaks.items()])


if __name__ == "__main__":
  app.run(main)
