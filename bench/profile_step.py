"""Where a training step's time goes: TF profiler, summed by op type.

    python -m bench.profile_step --size=full --variant=glvae [--steps=1]

Traces `--steps` training steps (after warm-up) with
`tf.profiler.experimental`, reads the host XPlane back and prints the share
of op time per op type (Conv2D, its backprops, MatMul, element-wise ...).
With 2 threads running ops in parallel the shares are of summed op time,
not of wall time.
"""

import collections
import glob
import os
import tempfile
import time

from absl import app
from absl import flags

from bench import harness  # pylint: disable=g-bad-import-order
import tensorflow as tf

from tfglv import _compat

flags.DEFINE_enum("size", "small", list(harness.SIZES), "Model size.")
flags.DEFINE_enum("variant", "glvae", ["glvae", "glow", "tfp_glow"],
                  "Model to profile.")
flags.DEFINE_enum("conv1x1", "full", ["full", "lu"], "1x1 conv.")
flags.DEFINE_enum("compute_dtype", "float32", ["float32", "bfloat16"],
                  "Coupling network dtype.")
flags.DEFINE_integer("steps", 1, "Traced steps.")
flags.DEFINE_integer("top", 25, "Op types to print.")
flags.DEFINE_enum("step", "trainer", harness.STEPS, harness.STEP_HELP)
flags.DEFINE_enum("optimizer", "tfglv", harness.OPTIMIZERS,
                  harness.OPTIMIZER_HELP)
flags.DEFINE_string("npz", "", harness.npz_help())
FLAGS = flags.FLAGS


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


def main(argv):
  del argv
  images = harness.load_images(16, npz=FLAGS.npz)
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
  app.run(main)
