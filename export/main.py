r"""Exports a training run for TF Serving and TF Lite.

Kept short: the logic lives in `tfglv.export_lib`, which is tested. Writes
the SavedModel (TF Serving layout), its warmup records and REST request
bodies to <export_dir>/<model_name>/<version>/, and the requested TF Lite
variants to its tflite/ folder. See the README section "Export".

  python -m export.main --workdir=/tmp/tfglv_tiny --export_dir=/tmp/models
  python -m export.main --workdir=/tmp/tfglv_tiny --export_dir=/tmp/models \
      --model_name=tfglv --version=3 --tflite=float32,float16,dynamic_range
"""

from absl import app
from absl import flags
from absl import logging

from tfglv import cli
from tfglv.export_lib import exporter
from tfglv.export_lib import tflite

FLAGS = flags.FLAGS


def define_flags():
  """Defines this command's flags. Called only when it runs, so that any
  number of commands can be imported into one process (a test session)."""
  flags.DEFINE_string("workdir", None,
                      "Training run directory (config.json + checkpoints/); "
                      "its latest checkpoint is exported.")
  flags.DEFINE_string("export_dir", None,
                      "Base directory TF Serving watches; the SavedModel goes "
                      "to <export_dir>/<model_name>/<version>/.")
  flags.DEFINE_string("model_name", "tfglv", "Model name (a directory name).")
  flags.DEFINE_integer("version", None,
                       "Integer version; default: one more than the largest "
                       "present (1 if none). Never overwrites.")
  flags.DEFINE_list("tflite", [],
                    "TF Lite variants to write, comma-separated, from: "
                    f"{', '.join(tflite.VARIANTS)}. Empty: none.")
  flags.DEFINE_integer("tflite_batch_size", 1,
                       "Fixed batch N of the TF Lite signatures.")
  flags.DEFINE_string("checkpoint", None,
                      "A checkpoint path to export instead of the latest.")
  flags.mark_flags_as_required(["workdir", "export_dir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  try:
    result = exporter.export_from_workdir(
        FLAGS.workdir, FLAGS.export_dir, model_name=FLAGS.model_name,
        version=FLAGS.version, tflite_variants=FLAGS.tflite,
        tflite_batch_size=FLAGS.tflite_batch_size,
        checkpoint=FLAGS.checkpoint)
  except ValueError as e:  # Bad input: say what, write nothing.
    raise app.UsageError(str(e)) from None
  logging.info("Export done.")
  print(exporter.format_report(result))


if __name__ == "__main__":
  define_flags()
  cli.run(main, "export.main")
