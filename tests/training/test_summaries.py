"""Tests of tfglv.training.summaries: TensorBoard writers, progress display."""

import glob
import os
from unittest import mock

import numpy as np
import tensorflow as tf

from tfglv.training import summaries


def test_progress_bar_and_log_lines(capsys):
  values = {"loss": 3.5, "learning_rate": 1e-3, "images_per_second": 120.0}
  summaries.Progress(10, interactive=True).update(5, values)
  assert "5/10" in capsys.readouterr().out
  with mock.patch.object(summaries.logging, "info") as info:
    summaries.Progress(10, initial_step=2, interactive=False).update(
        4, values)
  text = info.call_args[0][0] % info.call_args[0][1:]
  assert text.startswith("step 4/10 | loss 3.5000 | learning_rate 1.00e-03")
  assert "images_per_second 120 |" in text


def test_writers_write_only_when_enabled(tmp_path):
  disabled = summaries.SummaryWriters(str(tmp_path / "off"), enabled=False)
  disabled.scalars("train", 1, {"loss": 1.0})
  disabled.close()
  assert not os.path.exists(tmp_path / "off")
  writers = summaries.SummaryWriters(str(tmp_path / "on"))
  writers.scalars("eval", 3, {"bpd": 2.5})
  writers.images("train", 3, {"grid": np.zeros((4, 4, 3), np.uint8)})
  writers.close()
  tags = set()
  for path in glob.glob(str(tmp_path / "on" / "*" / "events.out.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      tags.update((os.path.basename(os.path.dirname(path)), value.tag)
                  for value in event.summary.value)
  assert tags == {("eval", "bpd"), ("train", "grid")}


def test_eta_is_bounded_by_a_time_budget():
  values = {"loss": 3.5}
  with mock.patch.object(summaries.time, "time", side_effect=[0.0, 10.0]), \
      mock.patch.object(summaries.logging, "info") as info:
    # 1 step in 10 s with 999,999 to go, but only 60 s of budget: 50 s left.
    summaries.Progress(1000000, interactive=False, max_seconds=60.0).update(
        1, values)
  text = info.call_args[0][0] % info.call_args[0][1:]
  assert text.endswith("ETA 0m50s"), text
