r"""Trains a tfglv model: `python -m train.main --config=tiny --workdir=DIR`.

Kept short: the logic lives in `tfglv.training`, which is tested. The
config is the named one, then the shortcut flags (--model, --batch_size,
...), then `--set <field>=<value>` in order; later ones win. Fields are
dotted paths (`train.batch_size`, `model.decoder.num_steps`); 0.2's names
(`image_size`, `decoder.num_steps`, `--config.<field>=<value>`) still work.
Examples:

  python -m train.main --config=tiny --workdir=/tmp/tfglv_tiny
  python -m train.main --config=cifar10 --model=glow --workdir=/tmp/glow \
      --data_dir=~/tensorflow_datasets --set train.batch_size=64
  python -m train.main --config=tiny --workdir=/tmp/npz --dataset=npz \
      --data_path=cifar10_subset.npz --set model.image_size=32 \
      --set 'model.encoder.channels=[8, 8, 8]'
"""

import gc
import os
import sys

from absl import app
from absl import flags
import tensorflow as tf

from tfglv import cli
from tfglv import configs
from tfglv import rundir
from tfglv import training

FLAGS = flags.FLAGS


def define_flags():
  """Defines this command's flags. Called only when it runs, so that any
  number of commands can be imported into one process (a test session)."""
  flags.DEFINE_enum("config", "tiny", configs.CONFIG_NAMES,
                    "Named config to start from.")
  flags.DEFINE_string("workdir", None,
                      "Run directory: config.json, checkpoints, TensorBoard "
                      "logs, sample PNGs. An existing run there is resumed.")
  flags.DEFINE_integer(
      "num_cpu_devices", 0,
      "Split the CPU into this many logical devices (MirroredStrategy "
      "replicas on a machine without GPUs); 0 leaves the devices alone.")
  flags.DEFINE_multi_string(
      "set", [], "Override any config field: --set train.batch_size=64 "
      "(repeatable, in order; lists as JSON, e.g. --set "
      "'model.encoder.channels=[8,8]'; see tfglv/configs/schema.py).")
  flags.DEFINE_enum("model", None, configs.MODEL_VARIANTS,
                    "Model variant (default: glvae).")
  flags.DEFINE_string(
      "dataset", None,
      "synthetic (embedded, no files; the tiny default), cifar10, "
      "downsampled_imagenet/64x64, lsun/bedroom, celeb_a_hq/256 (TFDS, "
      "prepared offline under --data_dir), npz or folder (see --data_path).")
  flags.DEFINE_string("data_dir", None, "TFDS data_dir (never downloads).")
  flags.DEFINE_string("data_path", None,
                      "The .npz file or image folder of --dataset=npz/folder.")
  flags.DEFINE_integer("batch_size", None,
                       "Global batch, split evenly over the replicas.")
  flags.DEFINE_integer("num_steps", None, "Total training steps.")
  flags.DEFINE_float("learning_rate", None, "Peak AdamW learning rate.")
  flags.DEFINE_integer("checkpoint_every", None, "Steps between checkpoints.")
  flags.DEFINE_integer("eval_every", None, "Steps between test evaluations.")
  flags.DEFINE_integer("seed", None, "Seed of data order, noise and init.")
  flags.DEFINE_integer("figure_scale", None,
                       "Enlarge the sample PNGs' cells this many times "
                       "(nearest neighbour); default 0: to at least 96 px.")
  flags.DEFINE_enum("strategy", None, configs.STRATEGIES,
                    "mirrored (default; all local GPUs or CPU devices), "
                    "one_device, or multi_worker (cluster from TF_CONFIG).")
  flags.DEFINE_float(
      "max_train_seconds", 0.0,
      "Stop after this many seconds of training steps (start-up, tracing, "
      "evaluation and checkpoints not counted), with a checkpoint, an "
      "evaluation and samples as at the last step; 0: no limit. Running the "
      "command again continues the run.")
  flags.DEFINE_bool(
      "allow_config_changes", False,
      "Continue an existing run with changed train.*/data.* settings beyond "
      "the number of steps, learning rate and intervals (e.g. another "
      "dataset); the changes are recorded in its config.json.")
  flags.DEFINE_float(
      "multi_worker_timeout_seconds",
      training.distribute.DEFAULT_MULTI_WORKER_TIMEOUT_SECONDS,
      "--strategy=multi_worker: stop with an error if the workers of "
      "TF_CONFIG have not all started and connected within this time.")


# Shortcuts for the most common single fields.
_SHORTCUTS = {
    "model": "model.variant",
    "dataset": "data.dataset",
    "data_dir": "data.data_dir",
    "data_path": "data.path",
    "batch_size": "train.batch_size",
    "num_steps": "train.num_steps",
    "learning_rate": "train.learning_rate",
    "checkpoint_every": "train.checkpoint_every",
    "eval_every": "train.eval_every",
    "seed": "train.seed",
    "strategy": "train.strategy",
    "figure_scale": "train.figure_scale",
}


def config_from_flags() -> configs.Config:
  """The run's config with every command-line override applied.

  A new run starts from the named `--config`; an existing run in
  `--workdir` from its own config.json, so `--workdir` alone continues it.
  One path: the shortcut flags and `--set` become (field, value) pairs for
  `configs.override`, which resolves 0.2's names and validates.
  """
  overrides = [(field, str(FLAGS[flag_name].value))
               for flag_name, field in _SHORTCUTS.items()
               if FLAGS[flag_name].value is not None]
  for assignment in FLAGS.set:
    field, separator, value = assignment.partition("=")
    if not separator:
      raise ValueError(f"--set expects <field>=<value>; got {assignment!r}.")
    overrides.append((field.strip(), value.strip()))
  saved = rundir.saved_config(FLAGS.workdir)
  if saved is None:
    base = configs.get(FLAGS.config)
  elif FLAGS["config"].present and FLAGS.config != saved.name:
    raise ValueError(
        f"workdir {FLAGS.workdir!r} holds a run of config {saved.name!r}, "
        f"not --config={FLAGS.config}. Leave --config out to continue it, "
        f"or use a new --workdir.")
  else:
    base = saved
  config = configs.override(base, overrides)
  if config.data.path and "://" not in config.data.path:
    # config.json must name the data wherever later tools run from.
    config.data.path = os.path.abspath(config.data.path)
  return configs.validate(config)


def rewrite_config_flags(argv):
  """0.2's `--config.<field>=<value>` (or `--config.<field> <value>`) as
  `--set=<field>=<value>`, so old command lines keep working."""
  rewritten, arguments = [], iter(argv)
  for argument in arguments:
    if argument.startswith("--config."):
      field, separator, value = argument[len("--config."):].partition("=")
      if not separator:
        value = next(arguments, "")
      argument = f"--set={field}={value}"
    rewritten.append(argument)
  return rewritten


def parse_flags(argv):
  return app.parse_flags_with_usage(rewrite_config_flags(argv))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  if not FLAGS.workdir:
    raise app.UsageError("--workdir is required.")
  if FLAGS.max_train_seconds < 0:
    raise app.UsageError(f"--max_train_seconds must be >= 0 (0: no limit); "
                         f"got {FLAGS.max_train_seconds}.")
  # tf.distribute logs every all-reduce it builds at INFO.
  tf.get_logger().setLevel("WARNING")
  try:
    if FLAGS.num_cpu_devices:
      training.configure_cpu_devices(FLAGS.num_cpu_devices)
    config = config_from_flags()
    if FLAGS.max_train_seconds and config.train.strategy == "multi_worker":
      raise ValueError("--max_train_seconds is not supported with "
                       "--strategy=multi_worker: each worker would stop at "
                       "its own step. Use --num_steps.")
    strategy = training.create_strategy(
        config.train.strategy,
        multi_worker_timeout_seconds=FLAGS.multi_worker_timeout_seconds)
    trainer = training.Trainer(
        config, FLAGS.workdir, strategy=strategy,
        allow_config_changes=FLAGS.allow_config_changes)
  except ValueError as e:  # Bad input: say what and stop before training.
    raise app.UsageError(str(e)) from None
  try:
    trainer.run(max_train_seconds=FLAGS.max_train_seconds or None)
  except training.CheckpointSaveError as e:
    sys.stderr.write(f"FATAL: {e}\n")
    sys.exit(1)
  # The traced graphs leave millions of objects; without this, the cycle
  # collector's final pass at interpreter exit takes tens of seconds.
  gc.freeze()
  if trainer.stopped_by:
    print(f"Stopped by {trainer.stopped_by} at step "
          f"{int(trainer.step.numpy())} with a checkpoint; run the same "
          f"command to continue.", flush=True)
    sys.exit(training.STOP_EXIT_STATUS[trainer.stopped_by])


if __name__ == "__main__":
  define_flags()
  cli.run(main, "train.main", flags_parser=parse_flags)
