"""Tests of tfglv.training.reporter, without a training loop."""

import glob
import json
import logging
import math
import os

import numpy as np
import pytest
import tensorflow as tf

from tfglv import model as model_lib
from tfglv.data import synthetic
from tfglv.training import optimizer as optimizer_lib
from tfglv.training import reporter as reporter_lib

import evaluation_testlib
from train_testlib import tiny

SUMMARY_KEYS = [
    "config", "model", "dataset", "start_step", "step", "skipped_steps",
    "num_parameters", "num_replicas", "global_batch_size",
    "actnorm_initialized", "wall_time_seconds",
    "train_seconds_after_first_step", "train_cpu_seconds_after_first_step",
    "train_history", "evaluations",
    "replica_max_abs_difference", "latest_checkpoint", "num_workers",
    "state_digest"]


@pytest.fixture(scope="module")
def parts():
  config = tiny(train__num_steps=4)
  model = model_lib.build_model(config)
  model.initialize(synthetic.generate(16, 16, 3, seed=0)["image"], seed=0)
  optimizer = optimizer_lib.build_optimizer(config.train)
  optimizer.build(model.trainable_variables)
  return config, model, optimizer


def metrics(loss, finite=1.0):
  return {"loss": loss, "nll": loss - 0.5, "kl": 0.5, "gradient_norm": 2.0,
          "finite": finite}


def test_a_run_reported_from_start_to_summary(parts, tmp_path, caplog):
  config, model, optimizer = parts
  workdir = str(tmp_path / "run")
  reporter = reporter_lib.Reporter(
      config, workdir, tf.distribute.get_strategy(), model, optimizer)
  assert reporter.originals.shape == (reporter_lib.NUM_RECONSTRUCTIONS, 16, 16,
                                      3)
  with caplog.at_level(logging.INFO, logger="absl"):
    reporter.start(0)
    reporter.log_interval(2, [metrics(7.0), metrics(float("nan"), 0.0)],
                          interval_start=0.0, skipped_steps=1.0)
    reporter.log_evaluation(2, {"bpd": 6.0, "iw_bpd": 5.9, "nll": 5.5,
                                "kl": 0.5, "num_images": 8.0})
  record, = reporter.history
  # The last step's loss; means over the finite steps only.
  assert math.isnan(record["loss"]) and record["bpd"] == 7.0
  assert record["nll"] == 6.5 and record["skipped_steps"] == 1.0
  assert record["kl_bits_per_image"] == 0.5 * 16 * 16 * 3  # kl * D.
  assert reporter.evaluations == [{"bpd": 6.0, "iw_bpd": 5.9, "nll": 5.5,
                                   "kl": 0.5, "num_images": 8.0, "step": 2}]
  logged = [r.getMessage() for r in caplog.records]
  assert logged[0].startswith("Training tiny (glvae) on synthetic: ")
  assert logged[1].startswith("step 2/4 | loss nan | bpd 7.0000")
  assert logged[2] == ("eval step 2: test bpd 6.0000 (iw 5.9000, nll "
                       "5.5000, kl 0.5000) on 8 images")

  reporter.write_images(2)
  figures = {}
  for name in ("samples_t0.7.png", "samples_t1.0.png", "reconstructions.png"):
    with open(os.path.join(workdir, name), "rb") as f:
      figures[name] = tf.io.decode_png(f.read()).numpy()
  # 16 samples in 4 x 4 cells under a title; 3 labelled rows of 8
  # reconstructions; 2-pixel padding; 16 px images enlarged 6x to 96 px.
  for name in ("samples_t0.7.png", "samples_t1.0.png"):
    evaluation_testlib.grid_part(figures[name], 4, 4, size=96)
  evaluation_testlib.grid_part(figures["reconstructions.png"], 3, 8, size=96,
                               labelled_rows=True)

  summary = reporter.summary(0, 4, 1, 1.5, None)
  assert list(summary) == SUMMARY_KEYS
  assert summary["replica_max_abs_difference"] == {"actnorm": 0.0,
                                                   "all_variables": 0.0}
  assert summary["num_parameters"] == sum(
      int(np.prod(v.shape)) for v in model.trainable_variables)
  reporter.write_summary(summary)
  with open(os.path.join(workdir, reporter_lib.SUMMARY_FILE)) as f:
    assert json.load(f)["train_history"][0]["bpd"] == 7.0


def test_reconstructions_are_exact_in_their_second_row(parts, tmp_path):
  config, model, optimizer = parts
  reporter = reporter_lib.Reporter(config, str(tmp_path),
                                   tf.distribute.get_strategy(), model,
                                   optimizer)
  images = reporter.images(step=0)
  assert sorted(images) == ["reconstructions", "samples/temperature_0.7",
                            "samples/temperature_1.0"]
  grid = evaluation_testlib.grid_part(images["reconstructions"], 3, 8,
                                      size=96, labelled_rows=True)
  first, second = grid[2:98], grid[100:196]  # Rows 0 and 1 (96 px cells).
  np.testing.assert_array_equal(first, second)


def test_an_evaluation_reports_the_global_code(parts, tmp_path, caplog):
  config, model, optimizer = parts
  workdir = str(tmp_path / "run")
  reporter = reporter_lib.Reporter(
      config, workdir, tf.distribute.get_strategy(), model, optimizer)
  warning = "WARNING: the global code z is near collapse at step 2: ..."
  evaluation = {"bpd": 6.0, "iw_bpd": 5.9, "nll": 5.5, "kl": 0.5,
                "num_images": 8.0, "kl_bits_per_image": 384.0,
                "active_units": 0, "latent_dim": 4,
                "mutual_information_bits": 0.01,
                "mutual_information_ceiling_bits": 3.0,
                "collapse_warning": warning}
  with caplog.at_level(logging.INFO, logger="absl"):
    reporter.start(0)
    reporter.log_evaluation(2, evaluation)
  records = [(r.levelname, r.getMessage()) for r in caplog.records]
  assert records[1] == ("INFO", (
      "eval step 2: test bpd 6.0000 (iw 5.9000, nll 5.5000, kl 0.5000) on 8 "
      "images; z: KL 384.00 bits/image, 0/4 active units, I(x;z) ~ 0.01 "
      "bits"))
  assert records[2] == ("WARNING", warning)
  reporter.writers.close()
  tags = set()
  for path in glob.glob(os.path.join(workdir, "eval", "events.out.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      tags.update(value.tag for value in event.summary.value)
  assert tags == {"loss", "bpd", "iw_bpd", "nll", "kl", "kl_bits_per_image",
                  "active_units", "mutual_information_bits"}
