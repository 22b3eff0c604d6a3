"""The divergence warning of the training log."""

import pytest

from tfglv.training import monitor


def _warnings(values, **kwargs):
  watcher = monitor.DivergenceMonitor(**kwargs)
  return [(step, message) for step, message in
          ((10 * (i + 1), watcher.update(10 * (i + 1), v))
           for i, v in enumerate(values)) if message]


def test_the_first_diverging_cifar10_curve_warns_once_with_the_figures():
  # The bpd of the full cifar10 run that diverged (issue 17), every 2 steps.
  curve = [6.45, 6.68, 6.80, 6.89, 6.95, 8.61, 8.63, 8.66, 9.4, 10.56]
  warnings = _warnings(curve, intervals=3)
  assert len(warnings) == 1
  step, message = warnings[0]
  assert step == 40
  assert message == ("training is diverging: bpd rose from 6.4500 to 6.8900 "
                     "over the last 30 steps; check learning_rate and "
                     "batch_size.")


def test_a_falling_or_noisy_curve_stays_quiet():
  assert not _warnings([6.3, 6.1, 6.0, 5.8, 5.7, 5.65])
  # Up three times, but by less than min_rise in all: plateau noise.
  assert not _warnings([3.50, 3.51, 3.52, 3.53, 3.50])


def test_warns_again_only_after_a_fall():
  warnings = _warnings([5, 5.1, 5.2, 5.3, 5.4, 5.0, 5.1, 5.2, 5.3])
  assert [step for step, _ in warnings] == [40, 90]


def test_disabled_and_bad_arguments():
  assert not _warnings([1, 2, 3, 4, 5, 6], intervals=0)
  with pytest.raises(ValueError, match="intervals must be >= 0"):
    monitor.DivergenceMonitor(intervals=-1)
  with pytest.raises(ValueError, match="min_rise must be >= 0"):
    monitor.DivergenceMonitor(min_rise=-0.1)
