r"""Trains glvae, glow and glvae_prior_only for equal wall time; prints bpd.

The three variants share one refined-Glow flow (same levels, steps and
channels); glvae and glvae_prior_only add the encoder and the flow prior.
Each trains on the same images for the same number of seconds, counted from
the end of its first (traced) step, then is evaluated on the whole test
split with k posterior samples. By default the variants train at the same
time, one process each, so that whatever else loads the machine slows them
alike; --noparallel trains them one after another.

  python -m bench.train_variants --npz=my_images.npz --minutes_per_model=15
  python -m bench.train_variants --noparallel --models=glvae,glow \
      --minutes_per_model=1

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
glvae < glvae_prior_only <= glow in bits/dim.
"""

import gc
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from absl import app
from absl import flags
from absl import logging

from bench import cifar_subset
from tfglv import configs
from tfglv import training

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = flags.FLAGS
flags.DEFINE_string("npz", None,
                    "Any .npz of uint8 images x_train, x_test [N, H, W, C]; "
                    f"default: the CIFAR-10 subset (${cifar_subset.ENV}, else "
                    f"{cifar_subset.DEFAULT}) if present, else the embedded "
                    "synthetic data at 32x32.")
flags.DEFINE_list("models", list(configs.MODEL_VARIANTS), "Variants to train.")
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

# A model that makes visible progress in minutes on two CPU cores (at
# 32x32; the size and channels follow the data).
BENCH_MODEL = {
    "model.image_size": "32", "model.latent_dim": "32",
    "model.encoder.channels": "[16, 16, 16]",
    "model.encoder.out_channels": "4",
    "model.prior.num_steps": "2", "model.prior.hidden_units": "64",
    "model.decoder.num_steps": "[1, [2, 2], 2]",
    "model.decoder.hidden_channels": "[16, 48, 48]",
}


def data_settings(npz: str):
  """The data fields of the runs, and the image shape they set."""
  if not npz:
    return {"data.dataset": "synthetic", "data.synthetic_size": "8192"}
  with np.load(npz) as archive:
    _, height, _, channels = archive["x_train"].shape
  levels = 3 if height % 8 == 0 and height >= 16 else 2
  return {"data.dataset": "npz", "data.path": os.path.abspath(npz),
          "model.image_size": str(height), "model.channels": str(channels),
          "model.encoder.channels": str([16] * levels)}


def bench_config(model: str) -> configs.Config:
  values = dict(BENCH_MODEL)
  values.update(data_settings(FLAGS.npz))
  values.update({
      "data.augmentation": FLAGS.augmentation,
      "train.strategy": "one_device",
      "train.batch_size": str(FLAGS.batch_size), "train.num_steps": "1000000",
      "train.warmup_steps": "50", "train.learning_rate": "1e-3",
      "train.weight_decay": "1e-6", "train.log_every": "100",
      "train.checkpoint_every": "500", "train.eval_every": "1000000",
      "train.sample_every": "1000000", "train.eval_batches": "0",
      "train.eval_posterior_samples": str(FLAGS.eval_posterior_samples),
  })
  for assignment in FLAGS.set:
    field, _, value = assignment.partition("=")
    values[field] = value
  return configs.override(configs.get("tiny", variant=model), values)


def format_table(rows) -> str:
  header = ("| model | parameters | steps | train img/s | test bpd (k={k}) "
            "| test iw bpd | last train bpd |").format(
                k=FLAGS.eval_posterior_samples)
  lines = [header, "|" + "---|" * 7]
  for row in rows:
    lines.append(
        f"| {row['model']} | {row['num_parameters']:,} | {row['step']} | "
        f"{row['images_per_second']:.0f} | {row['bpd']:.3f} | "
        f"{row['iw_bpd']:.3f} | {row['train_bpd']:.3f} |")
  return "\n".join(lines)


def train_one(model: str):
  """Trains and evaluates one variant; returns its table row."""
  config = bench_config(model)
  workdir = os.path.join(FLAGS.workdir_root, model)
  started = time.time()
  summary = training.Trainer(config, workdir).run(
      max_train_seconds=60 * FLAGS.minutes_per_model)
  evaluation = summary["evaluations"][-1]
  train_seconds = summary["train_seconds_after_first_step"]
  row = {
      "model": model, "num_parameters": summary["num_parameters"],
      "step": summary["step"],
      "images_per_second": (summary["step"] - 1) * config.train.batch_size
                           / max(train_seconds, 1e-9),
      "bpd": evaluation["bpd"], "iw_bpd": evaluation["iw_bpd"],
      "train_bpd": summary["train_history"][-1]["bpd"],
  }
  logging.info("%s done in %.0f s: %s", model, time.time() - started, row)
  return row


def train_in_processes(models):
  """One child process per model, all at once; returns their rows."""
  children = []
  for model in models:
    result = os.path.join(FLAGS.workdir_root, f"{model}.json")
    args = [sys.executable, "-m", "bench.train_variants", f"--models={model}",
            f"--result_json={result}", "--noparallel",
            f"--npz={FLAGS.npz}", f"--augmentation={FLAGS.augmentation}",
            f"--batch_size={FLAGS.batch_size}",
            f"--minutes_per_model={FLAGS.minutes_per_model}",
            f"--eval_posterior_samples={FLAGS.eval_posterior_samples}",
            f"--workdir_root={FLAGS.workdir_root}"]
    args += [f"--set={value}" for value in FLAGS.set]
    log = open(os.path.join(FLAGS.workdir_root, f"{model}.log"), "w")
    children.append((model, result, log, subprocess.Popen(
        args, stdout=log, stderr=subprocess.STDOUT, cwd=_REPO)))
  rows = []
  for model, result, log, child in children:
    if child.wait():
      raise RuntimeError(f"{model} failed; see {log.name}")
    log.close()
    with open(result) as f:
      rows.append(json.load(f))
  return rows


def main(argv):
  del argv
  if FLAGS.npz is None:
    default = cifar_subset.path()
    FLAGS.npz = default if os.path.exists(default) else ""
  if FLAGS.npz and not os.path.exists(FLAGS.npz):
    raise app.UsageError(
        f"--npz {FLAGS.npz} not found: pass the .npz of uint8 x_train, "
        "x_test, or leave --npz out for the embedded synthetic data.")
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
  app.run(main)
