"""Peak memory of a training step, one fresh subprocess per model.

    python -m bench.memory --sizes=small,full

TensorFlow's allocator statistics (`tf.config.experimental.get_memory_info`)
are zeros for the CPU device, so each model runs in its own process and
the process's resident-set high-water mark (`resource.getrusage`,
ru_maxrss) is read after building (variables + optimizer slots) and again
after two training steps at batch 16; the difference is what the step
itself (activations, gradients, temporaries) adds at its peak.
"""

import json
import resource
import subprocess
import sys

from absl import app
from absl import flags

from bench import harness  # pylint: disable=g-bad-import-order


def define_flags():
  """Defines this command's flags. Called only when it runs, so that any
  number of commands can be imported into one process (a test session)."""
  flags.DEFINE_list("sizes", ["small", "full"], "Sizes.")
  flags.DEFINE_list("variants", ["glvae", "glow", "glvae_lu", "glvae_bf16",
                                 "tfp_glow"], "Models (as in train_throughput).")
  flags.DEFINE_string("one", "", "Internal: size:variant to measure here.")
  harness.define_step_flags()


FLAGS = flags.FLAGS


def _max_rss_mib():
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure_one(size, variant):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  images = harness.load_images(16, npz=FLAGS.npz)
  if variant == "tfp_glow":
    reference = harness.build_tfglv(size, "glvae")
    params = harness.num_params(reference.trainable_variables)
    del reference
    model = harness.matched_tfp_glow(params, harness.hidden_width(size))
  else:
    parts = variant.split("_")
    model = harness.build_tfglv(
        size, parts[0], "lu" if "lu" in parts else "full",
        "bfloat16" if "bf16" in parts else "float32",
        init_images=harness.load_images(64, npz=FLAGS.npz))
  step = harness.step_for(model, FLAGS.step, FLAGS.optimizer)
  built = _max_rss_mib()
  for i in range(2):
    step(images, tf.constant([i, 0], tf.int32)).numpy()
  return {"params": harness.num_params(model.trainable_variables),
          "built_mib": built, "peak_mib": _max_rss_mib()}


def main(argv):
  del argv
  if FLAGS.one:
    size, variant = FLAGS.one.split(":")
    print("RESULT " + json.dumps(measure_one(size, variant)))
    return
  rows = []
  for size in FLAGS.sizes:
    for variant in FLAGS.variants:
      out = subprocess.run(
          [sys.executable, "-m", "bench.memory", f"--one={size}:{variant}",
           f"--step={FLAGS.step}", f"--optimizer={FLAGS.optimizer}",
           f"--npz={FLAGS.npz}"],
          capture_output=True, text=True, check=False)
      lines = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
      if not lines:
        error = (out.stderr.strip().splitlines() or ["no output"])[-1]
        rows.append((size, variant, "failed", "", "", error[:160]))
        continue
      r = json.loads(lines[-1][len("RESULT "):])
      rows.append((size, variant, f"{r['params'] / 1e6:.2f}M",
                   f"{r['built_mib']:.0f}", f"{r['peak_mib']:.0f}",
                   f"{r['peak_mib'] - r['built_mib']:.0f}"))
  harness.print_table(
      "Peak resident memory (MiB) of a training step at batch 16; "
      f"{harness.load_average()}",
      ("size", "model", "params", "after build", "peak after 2 steps",
       "step adds"), rows)


if __name__ == "__main__":
  define_flags()
  app.run(main)
