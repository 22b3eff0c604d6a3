r"""Evaluates a training run: `python -m train.evaluate --workdir=DIR --task=T`.

Kept short: the logic lives in `tfglv.evaluation.commands`, which is tested.
Tasks (comma-separated, or `all`): bpd, samples, reconstructions, switch,
interpolate, probe, fid. Outputs go to <workdir>/eval/; tables are printed.

  python -m train.evaluate --workdir=/tmp/tfglv_tiny --task=all
  python -m train.evaluate --workdir=RUN --task=bpd --posterior_samples=5
  python -m train.evaluate --workdir=RUN --task=probe --probe_max_train=4000
  python -m train.evaluate --workdir=RUN --task=fid \
      --inception_weights=inception_v3_weights_notop.h5
"""

from absl import app
from absl import flags
import tensorflow as tf

from tfglv import cli
from tfglv.data import sources
from tfglv.evaluation import commands
from tfglv.evaluation import representations

FLAGS = flags.FLAGS
_DEFAULTS = commands.EvaluationOptions()


def define_flags():
  """Defines this command's flags. Called only when it runs, so that any
  number of commands can be imported into one process (a test session)."""
  flags.DEFINE_string("workdir", None,
                      "Training run directory (config.json + checkpoints/).")
  flags.DEFINE_list("task", ["all"],
                    f"Tasks to run: {', '.join(commands.TASKS)}, or all (fid "
                    f"only with --inception_weights).")
  flags.DEFINE_string("checkpoint", None,
                      "A checkpoint path to evaluate instead of the latest.")
  flags.DEFINE_string("split", _DEFAULTS.split,
                      "Split for bpd, reconstructions, switch, interpolate and "
                      f"FID's real images: {', '.join(sources.SPLITS)}.")
  flags.DEFINE_integer("max_examples", 0,
                       "Use at most this many images of --split (0: all).")
  flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size,
                       "Images per model call.")
  flags.DEFINE_integer("posterior_samples", _DEFAULTS.posterior_samples,
                       "k, posterior samples per image of the bits/dim bounds.")
  flags.DEFINE_list("temperatures",
                    [str(t) for t in representations.SAMPLE_TEMPERATURES],
                    "Sample temperatures (scale v only), each > 0.")
  flags.DEFINE_integer("num_images", _DEFAULTS.num_images,
                       "Images per sample grid (reconstructions: a quarter).")
  flags.DEFINE_integer("num_pairs", _DEFAULTS.num_pairs,
                       "Image pairs in the switch grid.")
  flags.DEFINE_integer("switch_score_pairs", _DEFAULTS.switch_score_pairs,
                       "Pairs of --split whose switches the switch task scores "
                       "(at most half the split).")
  flags.DEFINE_integer("classifier_max_train", _DEFAULTS.classifier_max_train,
                       "Train images of the switch task's classifier "
                       "(0: all).")
  flags.DEFINE_integer("num_interpolations", _DEFAULTS.num_interpolations,
                       "2-D interpolation grids (one per image pair).")
  flags.DEFINE_float("probe_C", _DEFAULTS.probe_C,
                     "Inverse regularisation of the probe's LinearSVC; C=1 on "
                     "raw 32x32 pixels takes far longer to converge.")
  flags.DEFINE_integer("probe_max_train", 0,
                       "Probe on at most this many training images (0: all).")
  flags.DEFINE_integer("probe_max_test", 0,
                       "Score on at most this many test images (0: all).")
  flags.DEFINE_integer("probe_max_iter", _DEFAULTS.probe_max_iter,
                       "Iteration cap of the probe's solver.")
  flags.DEFINE_string("inception_weights", "",
                      "Keras weights file of the no-top InceptionV3 for FID "
                      "('imagenet': Keras downloads them; needs network).")
  flags.DEFINE_integer("fid_num_samples", _DEFAULTS.fid_num_samples,
                       "Samples for FID (the paper used 50000).")
  flags.DEFINE_float("fid_temperature", _DEFAULTS.fid_temperature,
                     "Temperature of the FID samples.")
  flags.DEFINE_integer("seed", _DEFAULTS.seed, "Seed of all evaluation noise.")
  flags.DEFINE_string("output_dir", "",
                      "Where results go; default: <workdir>/eval. Checked for "
                      "writing before any evaluation starts (for a read-only "
                      "workdir, pass a directory of your own).")
  flags.DEFINE_integer("figure_scale", _DEFAULTS.figure_scale,
                       "Enlarge every figure cell this many times (nearest "
                       "neighbour); 0: to at least 96 px.")


def options_from_flags() -> commands.EvaluationOptions:
  try:
    temperatures = tuple(float(t) for t in FLAGS.temperatures)
  except ValueError:
    raise ValueError(f"--temperatures must be numbers > 0, comma-separated; "
                     f"got {','.join(FLAGS.temperatures)!r}.") from None
  return commands.EvaluationOptions(
      split=FLAGS.split, max_examples=FLAGS.max_examples or None,
      batch_size=FLAGS.batch_size,
      posterior_samples=FLAGS.posterior_samples, temperatures=temperatures,
      num_images=FLAGS.num_images, num_pairs=FLAGS.num_pairs,
      switch_score_pairs=FLAGS.switch_score_pairs,
      classifier_max_train=FLAGS.classifier_max_train or None,
      num_interpolations=FLAGS.num_interpolations, probe_C=FLAGS.probe_C,
      probe_max_train=FLAGS.probe_max_train or None,
      probe_max_test=FLAGS.probe_max_test or None,
      probe_max_iter=FLAGS.probe_max_iter,
      inception_weights=FLAGS.inception_weights,
      fid_num_samples=FLAGS.fid_num_samples,
      fid_temperature=FLAGS.fid_temperature, seed=FLAGS.seed,
      figure_scale=FLAGS.figure_scale, output_dir=FLAGS.output_dir)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  tf.get_logger().setLevel("WARNING")
  try:
    results = commands.run_tasks(FLAGS.workdir, FLAGS.task,
                                 options_from_flags(),
                                 checkpoint=FLAGS.checkpoint)
  except ValueError as e:  # Bad input: say what and stop.
    raise app.UsageError(str(e)) from None
  for task, result in results.items():
    print(f"\n== {task} ==")
    print(result.get("table") or "\n".join(
        f"{key}: {value}" for key, value in sorted(result.items())))


if __name__ == "__main__":
  define_flags()
  cli.run(main, "train.evaluate")
