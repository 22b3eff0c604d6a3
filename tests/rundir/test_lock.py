"""One writer per directory: tfglv.rundir.lock."""

import os
import signal
import socket
import subprocess
import sys

import pytest

from tfglv.rundir import lock

_HOLD = """
import sys, time
from tfglv.rundir import lock
held = lock.DirectoryLock(sys.argv[1], "training").acquire()
print("held", flush=True)
time.sleep(600)
"""


def _holder(directory):
  child = subprocess.Popen([sys.executable, "-c", _HOLD, str(directory)],
                           stdout=subprocess.PIPE, text=True)
  assert child.stdout.readline().strip() == "held"
  return child


def test_a_second_writer_is_refused_with_the_holders_pid_and_host(tmp_path):
  child = _holder(tmp_path)
  try:
    with pytest.raises(lock.DirectoryInUseError,
                       match=rf"is in use by training \(pid {child.pid} on "
                             rf"host {socket.gethostname()}, since "):
      lock.DirectoryLock(str(tmp_path), "evaluation").acquire()
  finally:
    child.kill()
    child.wait()


def test_a_killed_holder_never_blocks(tmp_path):
  child = _holder(tmp_path)
  os.kill(child.pid, signal.SIGKILL)
  child.wait()
  # The lock file (with the dead holder's details) is still there.
  assert os.path.exists(tmp_path / lock.LOCK_FILE)
  with lock.DirectoryLock(str(tmp_path), "training") as held:
    assert held.held


def test_two_locks_in_one_process_exclude_each_other_until_released(
    tmp_path):
  first = lock.DirectoryLock(str(tmp_path), "training").acquire()
  second = lock.DirectoryLock(str(tmp_path), "export")
  with pytest.raises(lock.DirectoryInUseError, match=f"pid {os.getpid()}"):
    second.acquire()
  first.release()
  first.release()  # Harmless.
  second.acquire()
  assert second.held and not first.held
  second.release()


def test_the_lock_creates_its_directory(tmp_path):
  target = tmp_path / "new" / "eval"
  with lock.DirectoryLock(str(target), "evaluation"):
    assert (target / lock.LOCK_FILE).exists()
  # Released on exit: another takes it (acquire never waits: it would raise).
  lock.DirectoryLock(str(target), "evaluation").acquire().release()
