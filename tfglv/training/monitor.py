"""Watches the logged training loss for a divergence a user should hear of.

A run that diverges does not crash: the loss climbs while every step is
finite (the full CIFAR-10 model once went from 6.45 to 12.8 bits/dim in 38
steps). `DivergenceMonitor` sees the mean bits/dim of each log interval and
returns a warning once that mean has risen over `intervals` consecutive
intervals by at least `min_rise` in all. It warns once per climb, and again
only after the loss has fallen in between.
"""

from typing import List, Optional, Tuple


class DivergenceMonitor:
  """Turns a sequence of (step, interval-mean bpd) into divergence warnings.

  Args:
    intervals: consecutive rising log intervals that count as diverging;
      0 disables the monitor.
    min_rise: the smallest total rise (bits/dim) over those intervals that
      counts, so that noise on a plateau stays quiet.
  """

  def __init__(self, intervals: int = 3, min_rise: float = 0.05):
    if intervals < 0:
      raise ValueError(f"intervals must be >= 0 (0 disables); got "
                       f"{intervals}.")
    if min_rise < 0:
      raise ValueError(f"min_rise must be >= 0; got {min_rise}.")
    self.intervals = intervals
    self.min_rise = min_rise
    self._climb: List[Tuple[int, float]] = []
    self._warned = False

  def update(self, step: int, bpd: float) -> Optional[str]:
    """Records one interval's mean bpd; returns a warning or None."""
    if not self.intervals:
      return None
    if self._climb and not bpd > self._climb[-1][1]:
      self._climb, self._warned = [], False
    self._climb.append((step, bpd))
    rises = len(self._climb) - 1
    if rises < self.intervals or self._warned:
      return None
    (first_step, first), (last_step, last) = (
        self._climb[-self.intervals - 1], self._climb[-1])
    if last - first < self.min_rise:
      return None
    self._warned = True
    return (f"training is diverging: bpd rose from {first:.4f} to "
            f"{last:.4f} over the last {last_step - first_step} steps; check "
            f"learning_rate and batch_size.")
