"""Hardware efficiency of a training step: FLOPs vs measured matmul peak.

    python -m bench.flops --sizes=small,full

FLOPs of one training step come from TensorFlow's own op statistics
(`flops` registered for Conv2D, Conv2DBackpropInput/Filter, MatMul, ...)
over the traced train-step graph, so forward and backward are both counted
exactly as the step runs them. The machine's peak is the best of a few
large `tf.matmul`s in float32 and bfloat16, measured in the same run (the
load of other processes lowers both alike). Utilisation = step FLOPs /
step time / peak of the dtype the coupling networks compute in, once with
wall seconds and once with CPU-seconds (process user + system time; the
peak matmul is timed both ways too): the CPU figure is the one that holds
on a loaded machine.
"""

import collections

from absl import app
from absl import flags

from bench import harness  # pylint: disable=g-bad-import-order
import tensorflow as tf

from tfglv import _compat


def define_flags():
  """Defines this command's flags. Called only when it runs, so that any
  number of commands can be imported into one process (a test session)."""
  flags.DEFINE_list("sizes", ["small", "full"], "Sizes to run.")
  flags.DEFINE_list("variants", ["glvae", "glvae_bf16", "glvae_lu",
                                 "glow", "tfp_glow"],
                    "Rows (see bench.train_throughput).")
  flags.DEFINE_integer("rounds", 3, "Timed rounds per model (median).")
  flags.DEFINE_integer("matmul_size", 2048, "n of the n x n peak matmul.")
  harness.define_step_flags()


FLAGS = flags.FLAGS


def graph_flops(concrete_function):
  """{op type: FLOPs} of a traced function, from TF's registered stats.

  A function called from the graph (a `PartitionedCall` and the like: the
  shared Glow-step functions, their gradients) counts once per call.
  """
  library = {}

  def collect(g):
    for function in _compat.graph_functions(g):
      name = getattr(function, "name", None)
      name = name.decode() if isinstance(name, bytes) else name
      if hasattr(function, "graph") and name not in library:
        library[name] = function.graph
        collect(function.graph)

  collect(concrete_function.graph)
  memo = {}

  def visit(g, name=None):
    if name in memo:
      return memo[name]
    per_type = collections.Counter()
    for op in g.get_operations():
      try:
        stats = _compat.op_statistic(g, op.node_def, "flops")
      except ValueError:  # the statistic needs shapes this op lacks
        stats = None
      if stats is not None and stats.value:
        per_type[op.type] += stats.value
      for callee in _callees(op, library):
        per_type.update(visit(library[callee], callee))
    if name is not None:
      memo[name] = per_type
    return per_type

  return visit(concrete_function.graph)


def _callees(op, library):
  """Names of the library functions that `op` calls."""
  if op.type in library:
    return [op.type]
  names = []
  for attr in op.node_def.attr.values():
    if attr.HasField("func") and attr.func.name in library:
      names.append(attr.func.name)
  return names


def matmul_peak(dtype, n, repeats=5):
  """Best rates of an n x n x n matmul in `dtype` (2 n^3 FLOPs):
  {"wall": GFLOP/s, "cpu": GFLOP per CPU-second}, each the best call."""
  a = tf.cast(tf.random.stateless_normal([n, n], [1, 2]), dtype)
  b = tf.cast(tf.random.stateless_normal([n, n], [3, 4]), dtype)
  matmul = tf.function(tf.matmul)
  timings = harness.time_in_turns({"matmul": lambda: matmul(a, b).numpy()},
                                  rounds=repeats)["matmul"]
  return {clock: 2 * n**3 / min(getattr(t, clock) for t in timings) / 1e9
          for clock in ("wall", "cpu")}


def best_peaks(peaks, more):
  """The better of two `{dtype: {clock: GFLOP/s}}`, clock by clock."""
  return {dtype: {clock: max(rate, more[dtype][clock])
                  for clock, rate in rates.items()}
          for dtype, rates in peaks.items()}


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
    timing = harness.median_timing(times[name])
    total, per_type = flops[name]
    conv = sum(v for k, v in per_type.items()
               if k.startswith("Conv2D") or k.endswith("MatMul"))
    rate = {clock: total / seconds / 1e9
            for clock, seconds in timing._asdict().items()}
    own = peaks[dtypes[name]]
    rows.append((name, f"{total / 1e9:.1f}", f"{100 * conv / total:.1f}",
                 f"{timing.wall:.2f}", f"{timing.cpu:.2f}",
                 *harness.speed_cells(16, timing),
                 f"{rate['wall']:.1f}", f"{rate['cpu']:.1f}",
                 f"{100 * rate['cpu'] / peaks['float32']['cpu']:.1f}",
                 f"{100 * rate['wall'] / own['wall']:.1f}",
                 f"{100 * rate['cpu'] / own['cpu']:.1f}"))
  harness.print_table(
      f"Training step FLOPs (batch 16, fwd+bwd, TF op stats), size {size!r}, "
      f"{FLAGS.step} step; {_peak_text(peaks)}; {harness.load_average()}",
      ("model", "GFLOP/step", "% in convs+matmuls", "s/step", "CPU-s/step",
       *harness.SPEED_COLUMNS, "GFLOP/s", "GFLOP/CPU-s",
       "% of f32 peak (CPU)", "% of own-dtype peak (wall)",
       "% of own-dtype peak (CPU)"), rows)


def _peak_text(peaks):
  return "matmul peak " + ", ".join(
      f"{dtype} {rates['wall']:.1f} GFLOP/s, {rates['cpu']:.1f} GFLOP/CPU-s"
      for dtype, rates in peaks.items())


def main(argv):
  del argv

  def measure_peaks():
    return {name: matmul_peak(tf.as_dtype(name), FLAGS.matmul_size)
            for name in ("float32", "bfloat16")}

  peaks = measure_peaks()
  for size in FLAGS.sizes:
    run_size(size, peaks)
    # Re-measure: the load may have moved while the models ran.
    peaks = best_peaks(peaks, measure_peaks())
  harness.print_table(
      "Matmul peak (best over the run)",
      ("dtype", "GFLOP/s", "GFLOP/CPU-s"),
      [(k, f"{v['wall']:.1f}", f"{v['cpu']:.1f}") for k, v in peaks.items()])


if __name__ == "__main__":
  define_flags()
  app.run(main)
