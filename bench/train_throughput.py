"""Training throughput (images/s) of tfglv against tfp.bijectors.Glow.

    python -m bench.train_throughput --sizes=small,full

At batch 16 on 32x32x3 images, for each size: tfglv "glvae" and "glow",
their variants (LU 1x1 convs, bfloat16 coupling networks, XLA), and
`tfp.bijectors.Glow` (its default conv nets) built to the parameter count
of each tfglv model. Every model is trained by the same compiled step
(`harness.make_train_step`: by default tfglv's own `TrainStep` with the
trainer's AdamW, see --step and --optimizer) in this process; steps are
interleaved round by round and warm-up is excluded, and the ratios are of
CPU-seconds per step, so they hold whatever the machine's load.
"""

from absl import app
from absl import flags

from bench import harness  # pylint: disable=g-bad-import-order


def define_flags():
  """Defines this command's flags. Called only when it runs, so that any
  number of commands can be imported into one process (a test session)."""
  flags.DEFINE_list("sizes", ["small", "full"], "Sizes to run.")
  flags.DEFINE_list("variants", ["glvae", "glow", "glvae_lu", "glvae_bf16",
                                 "glvae_lu_bf16", "tfp_glow"],
                    "Rows: glvae, glow, glvae_lu, glow_lu, glvae_bf16, "
                    "glvae_lu_bf16, glvae_xla, glvae_lu_xla, tfp_glow.")
  flags.DEFINE_integer("rounds", 3, "Timed rounds (median taken).")
  flags.DEFINE_integer("steps_per_round", 1, "Steps per model per round.")
  flags.DEFINE_integer("batch_size", 16, "Images per step.")
  harness.define_step_flags()


FLAGS = flags.FLAGS


def _tfglv_row(name, size, init_images):
  """('glvae_lu_bf16', size) -> (model, jit_compile)."""
  parts = name.split("_")
  model = harness.build_tfglv(
      size, parts[0], "lu" if "lu" in parts else "full",
      "bfloat16" if "bf16" in parts else "float32", init_images=init_images)
  return model, "xla" in parts


def run_size(size):
  images = harness.load_images(FLAGS.batch_size, npz=FLAGS.npz)
  init_images = harness.load_images(64, npz=FLAGS.npz)
  models, steps, params = {}, {}, {}
  for name in FLAGS.variants:
    if name == "tfp_glow":
      continue
    model, jit = _tfglv_row(name, size, init_images)
    models[name] = model
    params[name] = harness.num_params(model.trainable_variables)
    steps[name] = harness.step_for(model, FLAGS.step, FLAGS.optimizer, jit,
                                   FLAGS.batch_size)
  peers = {}
  if "tfp_glow" in FLAGS.variants:
    for base in ("glvae", "glow"):
      if base not in params:
        continue
      peer = harness.matched_tfp_glow(params[base],
                                      harness.hidden_width(size))
      name = f"tfp_glow@{base}"
      peers[base] = name
      params[name] = harness.num_params(peer.trainable_variables)
      steps[name] = harness.step_for(peer, FLAGS.step, FLAGS.optimizer,
                                     False, FLAGS.batch_size)
      models[name] = peer
  times = harness.time_interleaved(steps, images, FLAGS.rounds,
                                   FLAGS.steps_per_round)
  median = {k: harness.median_timing(v) for k, v in times.items()}
  rows = []
  for name in steps:
    peer = peers.get(name.split("_")[0])
    ratio = (f"{median[peer].cpu / median[name].cpu:.2f}x"
             if peer and not name.startswith("tfp") else "")
    detail = ""
    if name.startswith("tfp"):
      model = models[name]
      detail = (f"{model.num_steps_per_block} steps/block, "
                f"width {model.hidden}")
    rows.append((f"{name}", f"{params[name] / 1e6:.2f}M",
                 f"{median[name].wall:.3f}",
                 " ".join(f"{t.wall:.2f}" for t in times[name]),
                 *harness.speed_cells(FLAGS.batch_size, median[name]),
                 ratio, detail))
  harness.print_table(
      f"Training step, size {size!r}, batch {FLAGS.batch_size}, "
      f"{FLAGS.rounds}x{FLAGS.steps_per_round} timed steps per model, "
      f"{FLAGS.step} step, {FLAGS.optimizer} AdamW; "
      f"{harness.load_average()}",
      ("model", "params", "s/step (median)", "s/step per round",
       *harness.SPEED_COLUMNS, "vs matched tfp Glow (CPU-s)", "peer"), rows)


def main(argv):
  del argv
  for size in FLAGS.sizes:
    run_size(size)


if __name__ == "__main__":
  define_flags()
  app.run(main)
