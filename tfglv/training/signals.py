"""SIGTERM and SIGINT stop training at a step boundary, with a checkpoint.

Preemptible cloud machines send SIGTERM (then SIGKILL some seconds later);
a user presses Ctrl-C (SIGINT). Either used to end the run on the spot
(exit 143, or a KeyboardInterrupt traceback) and lose every step since the
last checkpoint. Inside `StopRequests`, the first such signal only records
itself: the trainer finishes the step it is in, saves a checkpoint and
returns, and `train.main` exits 0 (SIGTERM) or 130 (SIGINT) with one line.
A second signal exits at once (status 128 + signal number), for a user who
does not want to wait.

Handlers can only be installed from the main thread; elsewhere (a trainer
run in a worker thread) `StopRequests` does nothing and signals keep their
usual effect.
"""

import os
import signal
import sys
import threading
from typing import Dict, Optional

from absl import logging

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# What `train.main` exits with after a clean stop.
EXIT_STATUS = {"SIGTERM": 0, "SIGINT": 130}


class StopRequests:
  """A context that turns SIGTERM/SIGINT into a request to stop.

  `received` is None until a signal arrives, then its name ("SIGTERM").
  """

  def __init__(self):
    self.received: Optional[str] = None
    self._previous: Dict[int, object] = {}

  def _handle(self, signum, unused_frame):
    name = signal.Signals(signum).name
    if self.received is not None:
      sys.stderr.write(f"Second signal ({name}): exiting now, without a "
                       f"checkpoint.\n")
      sys.stderr.flush()
      os._exit(128 + signum)  # pylint: disable=protected-access
    self.received = name
    logging.warning("Received %s: stopping after this step with a checkpoint "
                    "(send it again to exit at once).", name)

  def __enter__(self) -> "StopRequests":
    if threading.current_thread() is threading.main_thread():
      for signum in STOP_SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *unused_exc_info) -> None:
    for signum, previous in self._previous.items():
      signal.signal(signum, previous)
    self._previous = {}
