"""One writer per directory: an OS file lock held while writing.

Two trainers on one workdir used to run side by side and overwrite each
other's checkpoints, config.json and TensorBoard events. Every command
that writes a directory now holds an exclusive lock on it first:

    training      <workdir>/.tfglv.lock          (the chief; for the run)
    evaluation    <output dir>/.tfglv.lock       (default <workdir>/eval)
    export        <export_dir>/<model>/.tfglv.lock  (while it picks a
                                                     version and publishes)

The lock is `fcntl.flock` on that file: the kernel releases it when the
holder's file descriptor closes, so also when the process dies (even by
`kill -9`): a stale lock never blocks. The file holds the holder's PID,
host, purpose and start time, which a refused writer prints. It is left in
place after release (its presence means nothing; only the lock does).

flock works between processes of one machine and on local disks; shared
network filesystems may not honour it (NFS maps it to byte-range locks,
GCS has no locks), which the README says.
"""

import datetime
import errno
import fcntl
import json
import os
import socket
import time
from typing import Optional

from absl import logging

LOCK_FILE = ".tfglv.lock"


class DirectoryInUseError(ValueError):
  """Another live process holds the directory's lock."""


def _holder(path: str) -> str:
  try:
    with open(path) as f:
      holder = json.load(f)
    return (f"{holder['purpose']} (pid {holder['pid']} on host "
            f"{holder['host']}, since {holder['since']})")
  except (OSError, ValueError, KeyError, TypeError):
    return "another process (its details are unreadable)"


class DirectoryLock:
  """An exclusive, non-blocking lock on `directory` for `purpose`.

  `acquire()` raises DirectoryInUseError naming the holder when another
  process (or another lock object of this one) holds it. Use as a context
  manager, or `acquire()` / `release()`. Releasing twice is harmless.
  """

  def __init__(self, directory: str, purpose: str):
    self.directory = directory
    self.purpose = purpose
    self.path = os.path.join(directory, LOCK_FILE)
    self._fd: Optional[int] = None

  @property
  def held(self) -> bool:
    return self._fd is not None

  def acquire(self, wait_seconds: float = 0.0) -> "DirectoryLock":
    """Takes the lock; waits up to `wait_seconds` for a holder to let go."""
    deadline = time.monotonic() + wait_seconds
    while True:
      try:
        return self._try_acquire()
      except DirectoryInUseError:
        if time.monotonic() >= deadline:
          raise
        time.sleep(0.05)

  def _try_acquire(self) -> "DirectoryLock":
    if self._fd is not None:
      return self
    if "://" in self.directory:  # gs://, hdfs://: no OS locks there.
      logging.warning("%s is not on a local filesystem: it cannot be "
                      "locked, so make sure no other process writes it.",
                      self.directory)
      return self
    os.makedirs(self.directory, exist_ok=True)
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      os.close(fd)
      if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
        raise
      raise DirectoryInUseError(
          f"{self.directory} is in use by {_holder(self.path)}. One writer "
          f"at a time: wait for it to finish, stop it, or use another "
          f"directory. (A killed process never blocks: its lock is gone "
          f"with it.)") from None
    holder = {"purpose": self.purpose, "pid": os.getpid(),
              "host": socket.gethostname(),
              "since": datetime.datetime.now().isoformat(timespec="seconds")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(holder).encode(), 0)
    self._fd = fd
    return self

  def release(self) -> None:
    if self._fd is None:
      return
    fd, self._fd = self._fd, None
    try:
      fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
      os.close(fd)

  def __enter__(self) -> "DirectoryLock":
    return self.acquire()

  def __exit__(self, *unused_exc_info) -> None:
    self.release()

  def __del__(self):
    self.release()
