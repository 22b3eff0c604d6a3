r"""Trains the model variants for equal wall time; prints bpd.

glvae, glow and glvae_prior_only share one refined-Glow flow (same levels,
steps and channels); glvae and glvae_prior_only add the encoder and the flow
prior. glow_original is Glow's own flow at the same width (48; 3 levels of
5 steps, 341k parameters against glow's 309k at 32x32x3). Each row trains
on the same images for the same number of seconds, counted from the end of
its first (traced) step, then is evaluated on the whole test split with k
posterior samples. By default the rows train at the same time, one process
each, so that whatever else loads the machine slows them alike;
--noparallel trains them one after another. The default rows are the four
variants and glvae with variational dequantization.

A row of --models is a variant, optionally with config overrides of its
own: `<variant>[:<field>=<value>]...` (applied after --set, which every row
takes; a row's values cannot hold commas, --models being a list).

  python -m bench.train_variants --npz=my_images.npz --minutes_per_model=15
  python -m bench.train_variants --noparallel --models=glvae,glow \
      --minutes_per_model=1
  python -m bench.train_variants \
      --models=glow,glow_original,glvae:model.dequantization=variational

--npz is any .npz of uint8 images `x_train`, `x_test` [N, H, W, C] (square,
a side divisible by 4, any channel count; the model takes their size).
Without it: the real CIFAR-10 subset of `bench.cifar_subset` when it is
there ($TFGLV_CIFAR_SUBSET, else ../shared/data/cifar10_subset.npz beside
the checkout), else the embedded synthetic data at 32x32, so the command
works from a fresh clone. Runs go to a new directory (--workdir_root, which
must not exist yet or be empty; by default a new temporary one); nothing is
deleted. Each run checkpoints every 500 steps and at the end, and is
resumable with `python -m train.main --workdir=<root>/<model>`.

The paper's ordering (CIFAR-10, full scale) is
glvae < glvae_prior_only <= glow < glow_original in bits/dim (3.27, 3.31,
3.33, 3.35).
"""

import gc
import json
import os
import re
import sys
import tempfile
import time

import numpy as np

from absl import app
from absl import flags
from absl import logging

from bench import cifar_subset
from bench import harness
from tfglv import configs
from tfglv import training

FLAGS = flags.FLAGS


def define_flags():
  """Defines this command's flags. Called only when it runs, so that any
  number of commands can be imported into one process (a test session)."""
  flags.DEFINE_string("npz", None,
                      "Any .npz of uint8 images x_train, x_test [N, H, W, C]; "
                      f"default: the CIFAR-10 subset (${cifar_subset.ENV}, else "
                      f"{cifar_subset.DEFAULT}) if present, else the embedded "
                      "synthetic data at 32x32.")
  flags.DEFINE_list("models", DEFAULT_ROWS,
                    "Rows to train: a variant, optionally with overrides of "
                    "its own, <variant>[:<field>=<value>]..., e.g. "
                    "glvae:model.dequantization=variational.")
  flags.DEFINE_float("minutes_per_model", 6.0, "Training wall time per model.")
  flags.DEFINE_integer("batch_size", 32, "Global batch.")
  flags.DEFINE_integer("eval_posterior_samples", 5, "k of the test bpd.")
  flags.DEFINE_string("workdir_root", None,
                      "A new or empty directory for the runs (never emptied "
                      "or deleted); default: a new temporary directory.")
  flags.DEFINE_string("augmentation", "cifar",
                      "data.augmentation of the runs (cifar, flip, none).")
  flags.DEFINE_multi_string("set", [], "Extra config overrides, field=value.")
  flags.DEFINE_bool("parallel", True, "Train the variants concurrently, one "
                    "process each (fair under outside load).")
  flags.DEFINE_string("result_json", None, "Internal: where a child process "
                      "writes its row.")


# Every variant, and glvae with variational dequantization (issue 13).
DEFAULT_ROWS = list(configs.MODEL_VARIANTS) + [
    "glvae:model.dequantization=variational"]

# A model that makes visible progress in minutes on two CPU cores (at
# 32x32; the size and channels follow the data).
BENCH_MODEL = {
    "model.image_size": "32", "model.latent_dim": "32",
    "model.encoder.channels": "[16, 16, 16]",
    "model.encoder.out_channels": "4",
    "model.prior.num_steps": "2", "model.prior.hidden_units": "64",
    "model.decoder.num_steps": "[1, [2, 2], 2]",
    "model.decoder.hidden_channels": "[16, 48, 48]",
    "model.glow_original.num_levels": "3",
    "model.glow_original.num_steps": "5",
    "model.glow_original.hidden_channels": "48",
}


def parse_row(spec: str):
  """`<variant>[:<field>=<value>]...` -> (variant, {field: value})."""
  variant, *assignments = spec.strip().split(":")
  if variant not in configs.MODEL_VARIANTS:
    raise ValueError(
        f"--models row {spec!r}: unknown variant {variant!r}; a row is "
        f"<variant>[:<field>=<value>]... with a variant of "
        f"{', '.join(configs.MODEL_VARIANTS)}.")
  overrides = {}
  for assignment in assignments:
    field, separator, value = assignment.partition("=")
    if not separator or not field.strip():
      raise ValueError(f"--models row {spec!r}: expected <field>=<value> "
                       f"after each ':'; got {assignment!r}.")
    overrides[field.strip()] = value.strip()
  return variant, overrides


def row_directory(spec: str) -> str:
  """A file name for the row's run, log and result."""
  return re.sub(r"[^\w.=-]+", "_", spec.strip())


def data_settings(npz: str):
  """The data fields of the runs, and the image shape they set."""
  if not npz:
    return {"data.dataset": "synthetic", "data.synthetic_size": "8192"}
  with np.load(npz) as archive:
    _, height, _, channels = archive["x_train"].shape
  levels = 3 if height % 8 == 0 and height >= 16 else 2
  return {"data.dataset": "npz", "data.path": os.path.abspath(npz),
          "model.image_size": str(height), "model.channels": str(channels),
          "model.encoder.channels": str([16] * levels),
          # Glow halves the image once per level (the refined flow: twice).
          "model.glow_original.num_levels": str(levels)}


def bench_config(spec: str, npz: str = "", augmentation: str = "cifar",
                 batch_size: int = 32, eval_posterior_samples: int = 5,
                 sets=()) -> configs.Config:
  """The config of row `spec`: the bench model, the data of `npz` (""
  for the synthetic set), the `sets` of every row, then the row's own."""
  variant, row_overrides = parse_row(spec)
  values = dict(BENCH_MODEL)
  values.update(data_settings(npz))
  values.update({
      "data.augmentation": augmentation,
      "train.strategy": "one_device",
      "train.batch_size": str(batch_size), "train.num_steps": "1000000",
      "train.warmup_steps": "50", "train.learning_rate": "1e-3",
      "train.weight_decay": "1e-6", "train.log_every": "100",
      "train.checkpoint_every": "500", "train.eval_every": "1000000",
      "train.sample_every": "1000000", "train.eval_batches": "0",
      "train.eval_posterior_samples": str(eval_posterior_samples),
  })
  for assignment in sets:
    field, _, value = assignment.partition("=")
    values[field] = value
  values.update(row_overrides)
  return configs.override(configs.get("tiny", variant=variant), values)


def flags_config(spec: str) -> configs.Config:
  return bench_config(spec, FLAGS.npz, FLAGS.augmentation, FLAGS.batch_size,
                      FLAGS.eval_posterior_samples, FLAGS.set)


def format_table(rows) -> str:
  header = ("| model | parameters | steps | train img/s | train img/CPU-s "
            "| test bpd (k={k}) | test iw bpd | last train bpd |").format(
                k=FLAGS.eval_posterior_samples)
  lines = [header, "|" + "---|" * 8]
  for row in rows:
    lines.append(
        f"| {row['model']} | {row['num_parameters']:,} | {row['step']} | "
        f"{row['images_per_second']:.0f} | "
        f"{row['images_per_cpu_second']:.1f} | {row['bpd']:.3f} | "
        f"{row['iw_bpd']:.3f} | {row['train_bpd']:.3f} |")
  return "\n".join(lines)


def train_one(model: str):
  """Trains and evaluates one row; returns its table row."""
  config = flags_config(model)
  workdir = os.path.join(FLAGS.workdir_root, row_directory(model))
  started = time.time()
  summary = training.Trainer(config, workdir).run(
      max_train_seconds=60 * FLAGS.minutes_per_model)
  evaluation = summary["evaluations"][-1]
  train_seconds = summary["train_seconds_after_first_step"]
  cpu_seconds = summary["train_cpu_seconds_after_first_step"]
  trained_images = (summary["step"] - 1) * config.train.batch_size
  row = {
      "model": model, "num_parameters": summary["num_parameters"],
      "step": summary["step"],
      "images_per_second": trained_images / max(train_seconds, 1e-9),
      "images_per_cpu_second": trained_images / max(cpu_seconds, 1e-9),
      "bpd": evaluation["bpd"], "iw_bpd": evaluation["iw_bpd"],
      "train_bpd": summary["train_history"][-1]["bpd"],
  }
  logging.info("%s done in %.0f s: %s", model, time.time() - started, row)
  return row


def train_in_processes(models):
  """One child process per row, all at once; returns their rows."""
  children = []
  for model in models:
    result = os.path.join(FLAGS.workdir_root, f"{row_directory(model)}.json")
    args = [sys.executable, "-m", "bench.train_variants", f"--models={model}",
            f"--result_json={result}", "--noparallel",
            f"--npz={FLAGS.npz}", f"--augmentation={FLAGS.augmentation}",
            f"--batch_size={FLAGS.batch_size}",
            f"--minutes_per_model={FLAGS.minutes_per_model}",
            f"--eval_posterior_samples={FLAGS.eval_posterior_samples}",
            f"--workdir_root={FLAGS.workdir_root}"]
    args += [f"--set={value}" for value in FLAGS.set]
    children.append(harness.start_child(
        model, args[1:], os.path.join(FLAGS.workdir_root,
                                      f"{row_directory(model)}.log"), result))
  return harness.collect_rows(children)


def main(argv):
  del argv
  if FLAGS.npz is None:
    default = cifar_subset.path()
    FLAGS.npz = default if os.path.exists(default) else ""
  if FLAGS.npz and not os.path.exists(FLAGS.npz):
    raise app.UsageError(
        f"--npz {FLAGS.npz} not found: pass the .npz of uint8 x_train, "
        "x_test, or leave --npz out for the embedded synthetic data.")
  names = [row_directory(model) for model in FLAGS.models]
  if len(set(names)) < len(names):
    raise app.UsageError(f"--models lists a row twice: {FLAGS.models}.")
  for model in FLAGS.models:  # Every row's config, before any trains.
    try:
      flags_config(model)
    except ValueError as e:
      raise app.UsageError(str(e)) from None
  if FLAGS.result_json:  # A child of train_in_processes.
    row = train_one(FLAGS.models[0])
    with open(FLAGS.result_json, "w") as f:
      json.dump(row, f)
    return
  if FLAGS.workdir_root is None:
    FLAGS.workdir_root = tempfile.mkdtemp(prefix="tfglv_variants_")
  elif os.path.exists(FLAGS.workdir_root) and os.listdir(FLAGS.workdir_root):
    raise app.UsageError(
        f"--workdir_root {FLAGS.workdir_root} is not empty; pass a new or "
        "empty directory (nothing is ever deleted).")
  os.makedirs(FLAGS.workdir_root, exist_ok=True)
  print(f"Runs in {FLAGS.workdir_root}", flush=True)
  if FLAGS.parallel:
    rows = train_in_processes(FLAGS.models)
  else:
    rows = []
    for model in FLAGS.models:
      rows.append(train_one(model))
      gc.collect()
  mode = "concurrently" if FLAGS.parallel else "one after another"
  source = FLAGS.npz or "the embedded synthetic data"
  print(f"\nEqual wall time: {FLAGS.minutes_per_model:g} min of training per "
        f"model after its first step ({mode}); batch {FLAGS.batch_size}; "
        f"{source}; test bpd on the whole test split.\n")
  print(format_table(rows))


if __name__ == "__main__":
  define_flags()
  app.run(main)
