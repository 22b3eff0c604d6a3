"""Where a training step's time goes: TF profiler, summed by op type.

    python -m bench.profile_step --size=full --variant=glvae [--steps=1]

Traces `--steps` training steps (after warm-up) with
`tf.profiler.experimental`, reads the host XPlane back and prints the share
of op time per op type (Conv2D, its backprops, MatMul, element-wise ...).
With 2 threads running ops in parallel the shares are of summed op time,
not of wall time.

    python -m bench.profile_step --size=full --first_step [--compare_inline]
    python -m bench.profile_step --size=full --first_step --inline_blocks

times the first training step instead (the trainer's `TrainStep`), in wall
and CPU seconds: Python tracing, Grappler (its passes, from TensorFlow's
meta-optimizer log), the rest of the first call (instantiating the graphs,
the first run), then steady steps. `--compare_inline` also builds the step
as it was before the blocks were shared (inline blocks, Grappler on the
whole graph) in the same process and times both in turns: the steady-state
ratio of the two. `--inline_blocks` times the first step of that previous
path instead; run it in a process of its own (Python's and TensorFlow's
caches warmed by one path would flatter the other).
"""

import collections
import contextlib
import glob
import os
import re
import sys
import tempfile
import time

from absl import app
from absl import flags

from bench import harness  # pylint: disable=g-bad-import-order
import tensorflow as tf

import tfglv
from tfglv import _compat
from tfglv.flows import shared


def define_flags():
  """Defines this command's flags. Called only when it runs, so that any
  number of commands can be imported into one process (a test session)."""
  flags.DEFINE_enum("size", "small", list(harness.SIZES), "Model size.")
  flags.DEFINE_enum("variant", "glvae", ["glvae", "glow", "tfp_glow"],
                    "Model to profile.")
  flags.DEFINE_enum("conv1x1", "full", ["full", "lu"], "1x1 conv.")
  flags.DEFINE_enum("compute_dtype", "float32", ["float32", "bfloat16"],
                    "Coupling network dtype.")
  flags.DEFINE_integer("steps", 1, "Traced steps.")
  flags.DEFINE_integer("top", 25, "Op types to print.")
  harness.define_step_flags()
  flags.DEFINE_bool("first_step", False,
                    "Time the first training step (tracing, Grappler, the "
                    "rest of the first call) and steady steps instead.")
  flags.DEFINE_integer("steady_steps", 3,
                       "--first_step: steady steps timed (median).")
  flags.DEFINE_bool("compare_inline", False,
                    "--first_step: also time the step with inline blocks and "
                    "Grappler on its whole graph (the previous path), in "
                    "turns with the shared one.")
  flags.DEFINE_bool("inline_blocks", False,
                    "--first_step: time the first step of the previous path "
                    "instead (inline blocks, Grappler on its whole graph); "
                    "run it in a process of its own, next to one without.")


FLAGS = flags.FLAGS

# --first_step reads Grappler's time per pass from TensorFlow's log, which
# TensorFlow configures when it is imported: the bench runs itself again
# with these set.
_GRAPPLER_LOG = {"TF_CPP_VMODULE": "meta_optimizer=1",
                 "TF_CPP_MIN_LOG_LEVEL": "0"}
# A pass of TensorFlow's meta-optimizer, as its log reports it.
_PASS = re.compile(r"meta_optimizer\.cc:\d+\] (\w+)\S*: Graph size after: "
                   r"(\d+) nodes.*time = ([\d.]+)ms")


def op_time_by_type(logdir):
  """{op type: (total microseconds, count)} over the host threads."""
  path = sorted(glob.glob(os.path.join(logdir, "plugins", "profile", "*",
                                       "*.xplane.pb")))[-1]
  space = _compat.read_xspace(path)
  totals = collections.defaultdict(lambda: [0.0, 0])
  for plane in space.planes:
    if not plane.name.startswith("/host:CPU"):
      continue
    names = {k: v.name for k, v in plane.event_metadata.items()}
    for line in plane.lines:
      for event in line.events:
        name = names.get(event.metadata_id, "")
        # Executor kernels are named "op_name:OpType"; keep the type.
        if ":" not in name or name.startswith("__"):
          continue
        op_type = name.rsplit(":", 1)[1].lstrip("_")
        if not op_type or not op_type[0].isupper() or " " in op_type:
          continue
        # oneDNN kernels ("_MklNativeConv2D") count as their TF op.
        op_type = op_type.replace("MklNative", "").replace("Mkl", "")
        if op_type in ("Process", "Run"):  # executor wrappers, not ops
          continue
        totals[op_type][0] += event.duration_ps / 1e6
        totals[op_type][1] += 1
  return totals


@contextlib.contextmanager
def _stderr_captured():
  """What is written to file descriptor 2 inside (TF's C++ log too): the
  yielded list holds it, as text, on exit."""
  text = []
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile("w+") as capture:
    os.dup2(capture.fileno(), 2)
    try:
      yield text
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      capture.seek(0)
      text.append(capture.read())


def grappler_passes(log: str):
  """{pass: [seconds, runs]} and the node count of each optimised graph
  (before its first pass), from TensorFlow's meta-optimizer log."""
  passes = collections.defaultdict(lambda: [0.0, 0])
  graphs = []
  for name, nodes, millis in _PASS.findall(log):
    # Each graph starts with the model pruner; it runs twice per graph.
    if name == "model_pruner" and (not graphs or graphs[-1][1] == 2):
      graphs.append([int(nodes), 0])
    if name == "model_pruner":
      graphs[-1][1] += 1
    passes[name][0] += float(millis) / 1e3
    passes[name][1] += 1
  return dict(passes), [nodes for nodes, _ in graphs]


def trainer_step(model, images, optimizer: str):
  """The trainer's `TrainStep` on `model` and an iterator over `images`."""
  optimizer = harness.make_optimizer(optimizer)
  optimizer.build(model.trainable_variables)
  batch = int(images.shape[0])
  config = tfglv.configs.override(tfglv.configs.get("cifar10"), {
      "train.batch_size": str(batch)}).train
  counter = dict(dtype=tf.int64, trainable=False)
  step = tfglv.training.steps.TrainStep(
      model, optimizer, tf.distribute.get_strategy(), config, batch,
      step=tf.Variable(0, **counter), skipped_steps=tf.Variable(0, **counter))
  return step, iter(tf.data.Dataset.from_tensors({"image": images}).repeat())


def _seconds(timing):
  return f"{timing.wall:.2f}", f"{timing.cpu:.2f}"


def first_step(model, images):
  """Prints the first step's breakdown (and, --compare_inline, the steady
  ratio to the previous path)."""
  step, iterator = trainer_step(model, images, FLAGS.optimizer)
  path = contextlib.nullcontext()
  if FLAGS.inline_blocks:
    step.rewrites_off = lambda: ()  # Grappler on its whole graph.
    path = shared.inlined()
  with _stderr_captured() as log:
    with harness.Stopwatch() as tracing, path:
      graph = step.trace(iterator).graph
    with harness.Stopwatch() as first_call:
      float(step.train_step(iterator)["loss"])
  passes, graphs = grappler_passes(log[0])
  grappler = sum(seconds for seconds, _ in passes.values())
  steady = []
  for _ in range(FLAGS.steady_steps):
    with harness.Stopwatch() as watch:
      float(step.train_step(iterator)["loss"])
    steady.append(watch.timing)
  steady = harness.median_timing(steady)
  total = harness.Timing(tracing.timing.wall + first_call.timing.wall,
                         tracing.timing.cpu + first_call.timing.cpu)
  rest = harness.Timing(first_call.timing.wall - grappler,
                        first_call.timing.cpu - grappler)
  harness.print_table(
      f"First training step, {FLAGS.variant} {FLAGS.size}, "
      f"{'inline' if FLAGS.inline_blocks else 'shared'} blocks "
      f"({FLAGS.conv1x1}, "
      f"{FLAGS.compute_dtype}, batch {images.shape[0]}): "
      f"{len(graph.as_graph_def().node)} nodes in the step's graph, "
      f"{shared.tracing_count(model.decoder)} shared block functions; "
      f"{harness.load_average()}",
      ("phase", "wall s", "CPU s"),
      [("Python tracing", *_seconds(tracing.timing)),
       ("Grappler (its passes, one thread: CPU = wall)", f"{grappler:.2f}",
        f"{grappler:.2f}"),
       ("rest of the first call (instantiation, first run)",
        *_seconds(rest)),
       ("first step (tracing + first call)", *_seconds(total)),
       (f"steady step (median of {FLAGS.steady_steps})", *_seconds(steady)),
       ("steady step: images/s, images/CPU-s",
        *harness.speed_cells(images.shape[0], steady))])
  harness.print_table(
      f"Grappler passes over {len(graphs)} graphs (nodes: "
      f"{', '.join(map(str, sorted(graphs, reverse=True)[:4]))}"
      f"{' ...' if len(graphs) > 4 else ''})",
      ("pass", "seconds", "runs"),
      [(name, f"{seconds:.2f}", runs) for name, (seconds, runs) in
       sorted(passes.items(), key=lambda kv: -kv[1][0])])
  if FLAGS.compare_inline:
    compare_inline(model, images, step, iterator)


def compare_inline(model, images, step, iterator):
  """Steady steps of `step` and of the previous path, timed in turns."""
  inline, inline_iterator = trainer_step(model, images, FLAGS.optimizer)
  inline.rewrites_off = lambda: ()  # Grappler on its whole graph.
  with shared.inlined():
    inline.trace(inline_iterator)
  calls = {"shared blocks": lambda: float(step.train_step(iterator)["loss"]),
           "inline blocks (before)": lambda: float(
               inline.train_step(inline_iterator)["loss"])}
  times = harness.time_in_turns(calls, rounds=FLAGS.steady_steps)
  median = {name: harness.median_timing(t) for name, t in times.items()}
  before = median["inline blocks (before)"]
  harness.print_table(
      f"Steady step, in turns ({FLAGS.steady_steps} rounds; "
      f"{harness.load_average()})",
      ("step", "wall s", "CPU s", "CPU-s vs before"),
      [(name, *_seconds(m), f"{m.cpu / before.cpu:.3f}")
       for name, m in median.items()])


def main(argv):
  del argv
  images = harness.load_images(16, npz=FLAGS.npz)
  if FLAGS.first_step:
    if FLAGS.variant == "tfp_glow":
      raise app.UsageError("--first_step times tfglv's models.")
    if any(os.environ.get(k) != v for k, v in _GRAPPLER_LOG.items()):
      os.environ.update(_GRAPPLER_LOG)
      os.execv(sys.executable, [sys.executable] + sys.orig_argv[1:])
    first_step(harness.build_tfglv(
        FLAGS.size, FLAGS.variant, FLAGS.conv1x1, FLAGS.compute_dtype,
        init_images=harness.load_images(64, npz=FLAGS.npz)), images)
    return
  if FLAGS.variant == "tfp_glow":
    reference = harness.build_tfglv(FLAGS.size, "glow")
    model = harness.matched_tfp_glow(
        harness.num_params(reference.trainable_variables),
        harness.hidden_width(FLAGS.size))
  else:
    model = harness.build_tfglv(FLAGS.size, FLAGS.variant, FLAGS.conv1x1,
                                FLAGS.compute_dtype,
                                init_images=harness.load_images(
                                    64, npz=FLAGS.npz))
  step = harness.step_for(model, FLAGS.step, FLAGS.optimizer)
  seed = tf.constant([0, 0], tf.int32)
  start = time.perf_counter()
  step(images, seed).numpy()  # Traces, optimises the graph, runs once.
  first = time.perf_counter() - start
  step(images, seed).numpy()
  logdir = tempfile.mkdtemp(prefix="tfglv_profile_")
  tf.profiler.experimental.start(logdir)
  start = time.perf_counter()
  for i in range(FLAGS.steps):
    step(images, tf.constant([i, 1], tf.int32)).numpy()
  wall = (time.perf_counter() - start) / FLAGS.steps
  tf.profiler.experimental.stop()
  totals = op_time_by_type(logdir)
  total = sum(t for t, _ in totals.values())
  rows = []
  for op_type, (micros, count) in sorted(totals.items(),
                                         key=lambda kv: -kv[1][0])[:FLAGS.top]:
    rows.append((op_type, f"{micros / 1e3 / FLAGS.steps:.1f}",
                 f"{100 * micros / total:.1f}", count // FLAGS.steps))
  harness.print_table(
      f"Op time per step, {FLAGS.variant} {FLAGS.size} ({FLAGS.conv1x1}, "
      f"{FLAGS.compute_dtype}, {FLAGS.step} step); first call {first:.1f} s; "
      f"wall {wall:.2f} s/step, summed op time "
      f"{total / 1e6 / FLAGS.steps:.2f} s/step; {harness.load_average()}",
      ("op type", "ms/step", "% op time", "ops/step"), rows)


if __name__ == "__main__":
  define_flags()
  app.run(main)
