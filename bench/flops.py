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
import numpy as np
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
  flags.DEFINE_bool("shape_bound", False,
                    "Also run every convolution and matmul of the step alone, "
                    "at its own shapes, and print the share of the peak "
                    "each shape reaches: which of them bound the step's.")
  harness.define_step_flags()


FLAGS = flags.FLAGS


def graph_flops(concrete_function, kernels=None):
  """{op type: FLOPs} of a traced function, from TF's registered stats.

  A function called from the graph (a `PartitionedCall` and the like: the
  shared Glow-step functions, their gradients) counts once per call.
  `kernels`, a Counter, if given, counts the step's convolutions and
  matmuls by `KernelSpec` (how many of each run per step).
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
    per_type, specs = collections.Counter(), collections.Counter()
    for op in g.get_operations():
      try:
        stats = _compat.op_statistic(g, op.node_def, "flops")
      except ValueError:  # the statistic needs shapes this op lacks
        stats = None
      if stats is not None and stats.value:
        per_type[op.type] += stats.value
        if op.type in KERNEL_TYPES:
          spec = kernel_spec(op, stats.value)
          if spec is not None:
            specs[spec] += 1
      for callee in _callees(op, library):
        callee_types, callee_specs = visit(library[callee], callee)
        per_type.update(callee_types)
        specs.update(callee_specs)
    if name is not None:
      memo[name] = (per_type, specs)
    return per_type, specs

  per_type, specs = visit(concrete_function.graph)
  if kernels is not None:
    kernels.update(specs)
  return per_type


# The ops that hold the FLOPs, replayed alone by `kernel_seconds`.
KERNEL_TYPES = ("MatMul", "BatchMatMulV2", "Conv2D", "Conv2DBackpropInput",
                "Conv2DBackpropFilter")


class KernelSpec(collections.namedtuple(
    "KernelSpec", "op_type inputs attrs flops")):
  """One convolution or matmul as the step runs it: its inputs (name,
  dtype, shape or the constant it reads), its attributes, its FLOPs."""


def kernel_spec(op, flops):
  """The `KernelSpec` of `op`, or None where a shape is not static."""
  inputs = []
  for arg, tensor in zip(op.op_def.input_arg, op.inputs):
    constant = None
    if arg.name.endswith("_sizes"):  # The shape of what the op computes.
      constant = (list(op.outputs[0].shape)
                  if op.outputs[0].shape.is_fully_defined() else None)
      if constant is None:
        return None
    if constant is not None:
      inputs.append((arg.name, None, tuple(int(v) for v in constant)))
    elif tensor.shape.is_fully_defined():
      inputs.append((arg.name, tensor.dtype.name, tuple(tensor.shape)))
    else:
      return None
  attrs = tuple((attr.name, repr(op.get_attr(attr.name)))
                for attr in op.op_def.attr if attr.name != "T")
  return KernelSpec(op.type, tuple(inputs), attrs, int(flops))


def kernel_seconds(spec: KernelSpec, min_seconds: float = 0.05):
  """Wall and CPU seconds of one run of `spec` alone (best of 3).

  One call runs enough copies of the op to last `min_seconds` (at most
  256, and 256 MB of inputs), side by side as the step's independent ops
  run, so a call's overhead does not count against small ops. Each copy
  reads inputs of its own: TF merges identical ops on identical inputs.
  """
  import ast  # pylint: disable=g-import-not-at-top
  attrs = {name: ast.literal_eval(value) for name, value in spec.attrs}
  attrs = {name: value.decode() if isinstance(value, bytes) else value
           for name, value in attrs.items()}
  kernel = getattr(tf.raw_ops, spec.op_type)

  def inputs(copy):
    return {name: (tf.constant(shape, tf.int32) if dtype is None else
                   tf.cast(tf.random.stateless_normal(shape, [index, copy]),
                           dtype))
            for index, (name, dtype, shape) in enumerate(spec.inputs)}

  def copies(count):
    arguments = [inputs(copy) for copy in range(count)]
    function = tf.function(
        lambda: [kernel(**a, **attrs) for a in arguments], autograph=False)
    function()
    return function

  with harness.Stopwatch() as probe:
    copies(1)()
  input_bytes = sum(4 * np.prod(shape) for _, dtype, shape in spec.inputs
                    if dtype is not None)
  count = int(min(256, 2**28 // max(input_bytes, 1),
                  max(1, min_seconds / max(probe.timing.wall, 1e-6))))
  run = copies(max(count, 1))
  best = None
  for _ in range(3):
    with harness.Stopwatch() as watch:
      run()
    timing = harness.Timing(watch.timing.wall / max(count, 1),
                            watch.timing.cpu / max(count, 1))
    best = timing if best is None or timing.wall < best.wall else best
  return best


def print_shape_bound(name, kernels, step_timing, total_flops, peak):
  """The step's convolutions and matmuls run alone: their share of `peak`,
  and the shapes that cost most with the share each reaches. Run alone,
  an op's inputs come from memory rather than from the op before it, so
  the total may fall below the whole step's share: it ranks the shapes,
  it does not cap the step."""
  rows, alone_wall, alone_cpu, flops = [], 0.0, 0.0, 0
  for spec, count in kernels.items():
    timing = kernel_seconds(spec)
    alone_wall += count * timing.wall
    alone_cpu += count * timing.cpu
    flops += count * spec.flops
    shapes = " x ".join("x".join(map(str, shape)) for arg, dtype, shape
                        in spec.inputs if dtype is not None)
    rows.append((count * timing.wall, spec.op_type, shapes, count,
                 f"{count * timing.wall * 1e3:.0f}",
                 f"{100 * spec.flops / timing.wall / 1e9 / peak['wall']:.0f}"))
  rows.sort(reverse=True)
  harness.print_table(
      f"{name}: its {sum(kernels.values())} convolutions and matmuls "
      f"({flops / 1e9:.1f} of the step's {total_flops / 1e9:.1f} GFLOP), "
      f"each run alone at its own shapes: {alone_wall:.2f} s "
      f"({alone_cpu:.2f} CPU-s), {100 * flops / alone_wall / 1e9 / peak['wall']:.1f}% "
      f"of the peak (wall), {100 * flops / alone_cpu / 1e9 / peak['cpu']:.1f}% "
      f"(CPU). The whole step: {step_timing.wall:.2f} s, "
      f"{100 * total_flops / step_timing.wall / 1e9 / peak['wall']:.1f}% "
      f"(wall). Costliest shapes",
      ("op", "input shapes", "per step", "ms alone per step",
       "% of peak alone"), [row[1:] for row in rows[:12]])


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
  steps, flops, dtypes, kernels = {}, {}, {}, {}
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
    kernels[name] = collections.Counter()
    per_type = graph_flops(concrete, kernels[name])
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
  if FLAGS.shape_bound:
    for name in steps:
      print_shape_bound(f"{name} {size}", kernels[name],
                        harness.median_timing(times[name]),
                        flops[name][0], peaks[dtypes[name]])


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
