r"""Decode latency of the export: SavedModel versus TF Lite float32.

    python -m bench.decode_latency                      # demo tiny run, 32x32
    python -m bench.decode_latency --size=small         # cifar10 layout, smaller
    python -m bench.decode_latency --workdir=/tmp/run   # a real training run

Exports the model the way `export.main` does: the SavedModel's `decode`
signature (free batch, in-graph input checks; through `ExportArchive`) and
the TF Lite float32 file at a fixed batch of 1 and of 16 (builtin ops only).
Both decode the same (z, v), encoded from CIFAR-10 test images (synthetic
ones if the subset is absent), and must agree within one grey level before
anything is timed. Timing interleaves the four candidates round by round in
one process (the load of a shared machine moves during a run) and reports
the median per call, in wall time and in images per CPU-second (process
user + system time, which other processes hardly change); ratio =
SavedModel CPU-seconds / TF Lite CPU-seconds. TensorFlow uses
its default thread pools; the TF Lite interpreter gets --tflite_threads.
Without --workdir the weights are a stand-in (demo_run), which is fine for
latency: it does not depend on the values.
"""

import os
import tempfile

from absl import app
from absl import flags

from bench import cifar_subset  # pylint: disable=g-bad-import-order
from bench import harness
import numpy as np
import tensorflow as tf

import tfglv
from tfglv import rundir
from tfglv.data import synthetic
from tfglv.export_lib import demo_run
from tfglv.export_lib import saved_model as saved_model_lib
from tfglv.export_lib import tflite


def define_flags():
  """Defines this command's flags. Called only when it runs, so that any
  number of commands can be imported into one process (a test session)."""
  flags.DEFINE_string("workdir", None,
                      "A training run to benchmark; default: a demo run.")
  flags.DEFINE_enum("size", "tiny", ["tiny", "small", "full"],
                    "Demo model without --workdir: tiny (the tests' 32x32 tiny "
                    "config), small or full (cifar10 layouts of bench.harness).")
  flags.DEFINE_list("batch_sizes", ["1", "16"], "Batch sizes.")
  flags.DEFINE_integer("rounds", 7, "Interleaved rounds (median).")
  flags.DEFINE_integer("calls_per_round", 5, "Calls per candidate per round.")
  flags.DEFINE_integer("tflite_threads", os.cpu_count(),
                       "TF Lite interpreter threads.")
  flags.DEFINE_string("npz", "", harness.npz_help(
      "the model's (32x32x3 for the demo sizes; with "
      "--workdir, the run's)"))


FLAGS = flags.FLAGS


def demo_config(size: str):
  if size == "tiny":
    return tfglv.configs.get("tiny", image_size=32,
                             encoder__channels=[8, 8, 8])
  spec = harness.SIZES[size]
  return tfglv.configs.override(tfglv.configs.get(spec["name"]),
                                spec["overrides"])


def load_model(scratch: str):
  workdir = FLAGS.workdir
  if workdir is None:
    workdir = os.path.join(scratch, "demo_run")
    config = demo_config(FLAGS.size)
    demo_run.write_demo_workdir(workdir, config,
                                images_for(config, 64, split="train"))
  config, model, _ = rundir.restore(workdir)
  return config, model


def images_for(config, count: int, split: str = "test"):
  if FLAGS.npz:
    return harness.load_images(count, config.model.image_size,
                               npz=FLAGS.npz,
                               channels=config.model.channels).numpy()
  images = (cifar_subset.load(split, count)
            if config.model.image_shape == (32, 32, 3) else None)
  if images is not None:
    return images
  return synthetic.generate(count, config.model.image_size,
                            config.model.channels,
                            seed=3)["image"]


def candidates(model, config, scratch: str, batch_sizes):
  """{(backend, batch): (call, expected output)} after a parity check."""
  saved_model_dir = os.path.join(scratch, "saved_model")
  saved_model_lib.write_saved_model(model, saved_model_dir, ("decode",))
  decode = tf.saved_model.load(saved_model_dir).signatures["decode"]
  z, _, v = model.encode(images_for(config, max(batch_sizes)))
  result = {}
  for batch in batch_sizes:
    z_batch, v_batch = z[:batch], v[:batch]
    static_dir = os.path.join(scratch, f"tflite_static_{batch}")
    tflite.write_static_saved_model(model, static_dir, batch)
    runner = tflite.Runner(tflite.convert(static_dir, "float32"),
                           num_threads=FLAGS.tflite_threads)
    z_numpy, v_numpy = z_batch.numpy(), v_batch.numpy()
    calls = {
        "SavedModel": lambda z=z_batch, v=v_batch: decode(z=z, v=v)[
            "images"].numpy(),
        "TF Lite float32": lambda z=z_numpy, v=v_numpy, run=runner: run(
            "decode", z=z, v=v)["images"],
    }
    outputs = {name: fn() for name, fn in calls.items()}
    error = np.abs(outputs["SavedModel"].astype(int) -
                   outputs["TF Lite float32"].astype(int)).max()
    if error > 1:
      raise RuntimeError(f"TF Lite and SavedModel decodes differ by {error} "
                         f"grey levels at batch {batch}.")
    for name, fn in calls.items():
      result[(name, batch)] = fn
  return result


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  batch_sizes = sorted(int(b) for b in FLAGS.batch_sizes)
  with tempfile.TemporaryDirectory() as scratch:
    config, model = load_model(scratch)
    calls = candidates(model, config, scratch, batch_sizes)
    times = harness.time_in_turns(calls, FLAGS.rounds,
                                  FLAGS.calls_per_round)
  rows = []
  for batch in batch_sizes:
    saved = harness.median_timing(times[("SavedModel", batch)])
    lite = harness.median_timing(times[("TF Lite float32", batch)])
    rows.append((batch, f"{saved.wall * 1e3:.2f}", f"{lite.wall * 1e3:.2f}",
                 f"{saved.cpu / lite.cpu:.2f}",
                 *harness.speed_cells(batch, saved),
                 *harness.speed_cells(batch, lite)))
  source = FLAGS.workdir or f"demo {FLAGS.size} run"
  harness.print_table(
      f"Decode latency, {config.name} {config.model.variant} "
      f"{'x'.join(map(str, config.model.image_shape))} ({source}); median of "
      f"{FLAGS.rounds} rounds x {FLAGS.calls_per_round} calls; TF Lite "
      f"threads {FLAGS.tflite_threads}; {harness.load_average()}",
      ("batch", "SavedModel ms", "TF Lite ms", "ratio SM/TFLite (CPU-s)",
       *(f"{backend} {column}" for backend in ("SM", "TFLite")
         for column in harness.SPEED_COLUMNS)), rows)


if __name__ == "__main__":
  define_flags()
  app.run(main)
