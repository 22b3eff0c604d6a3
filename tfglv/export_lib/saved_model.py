"""The SavedModel: every signature, through `keras.export.ExportArchive`.

Keras 3 variables are not `tf.Variable`s, so a `tf.Module` that merely holds
the model saves no variables: it reloads in Python yet fails in
`saved_model_cli run` and in TF Serving's C++ loader ("Could not find
variable"). `ExportArchive` saves them as TF variables.

TF Serving watches `<base>/<model_name>/` and serves its integer-named
subdirectories as versions. `reserve_version` picks the next free version
(atomically, so that concurrent exports differ) and yields a hidden staging
directory that is renamed into place at the end, so the server never sees a
half-written version.
"""

import contextlib
import os
import re
import shutil
import tempfile
from typing import Dict, Iterator, Optional, Sequence, Tuple

import keras
import tensorflow as tf

from tfglv import gc_pause
from tfglv.export_lib import signatures as signatures_lib
from tfglv.rundir import layout
from tfglv.rundir import lock

_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def write_saved_model(model, path: str,
                      signature_names: Sequence[str] = signatures_lib
                      .SIGNATURE_NAMES) -> None:
  """Writes `model` as a SavedModel with the named signatures.

  Enables the model's 1x1-conv inverse cache first, so decoding reads the
  stored W^-1 (no MatrixInverse or slogdet in the graph). The serving default
  (`signatures.SERVING_DEFAULT`, when among `signature_names`) is added first:
  `ExportArchive` aliases its first endpoint as `serving_default`.

  Args:
    model: a trained `GLVAE`.
    path: the directory to write (must not exist or be empty).
    signature_names: which signatures to export.
  """
  model.set_inference_cache(True)
  functions = signatures_lib.ServingFunctions(model)
  names = list(signature_names)
  if signatures_lib.SERVING_DEFAULT in names:
    names.remove(signatures_lib.SERVING_DEFAULT)
    names.insert(0, signatures_lib.SERVING_DEFAULT)
  # Tracing every signature, and saving (which traces them again), with
  # the garbage collector paused (`gc_pause`).
  with gc_pause.paused():
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name in names:
      archive.add_endpoint(
          name, functions.function(name),
          input_signature=functions.specs[name].input_signature)
    archive.write_out(path, verbose=False)


def check_model_name(model_name: str) -> str:
  if not _MODEL_NAME.match(model_name or ""):
    raise ValueError(
        f"model_name must be a plain directory name (letters, digits, '_', "
        f"'-', '.'; not starting with '.' or '-'); got {model_name!r}.")
  return model_name


# TF Serving's versions are int64.
MAX_VERSION = 2 ** 63 - 1
# A version being exported: `.staging-<version>-pid<pid>-<random>`.
_STAGING = re.compile(r"^\.staging-(\d+)-pid(\d+)-")


def existing_versions(model_directory: str) -> Sequence[int]:
  """The integer version directories under `model_directory`, sorted."""
  if not tf.io.gfile.isdir(model_directory):
    return []
  return sorted(int(name.rstrip("/"))
                for name in tf.io.gfile.listdir(model_directory)
                if name.rstrip("/").isdigit())


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # Another user's live process.
    return True
  return True


def reserved_versions(model_directory: str) -> Dict[int, int]:
  """{version: pid} of exports in progress (their staging directories).

  A staging directory whose process is gone (an export killed on this
  machine) reserves nothing and is removed.
  """
  reserved = {}
  if not os.path.isdir(model_directory):
    return reserved
  for name in os.listdir(model_directory):
    match = _STAGING.match(name)
    if not match:
      continue
    version, pid = int(match.group(1)), int(match.group(2))
    if _alive(pid):
      reserved[version] = pid
    else:
      shutil.rmtree(os.path.join(model_directory, name), ignore_errors=True)
  return reserved


def version_directory(export_dir: str, model_name: str,
                      version: Optional[int] = None) -> str:
  """`<export_dir>/<model_name>/<version>`, the next version if None.

  Raises ValueError for a version outside [1, MAX_VERSION], or one that
  already exists or is being exported (an export never overwrites a version
  TF Serving may be serving).
  """
  layout.check_path(export_dir, "--export_dir")
  model_directory = os.path.join(export_dir, check_model_name(model_name))
  versions = existing_versions(model_directory)
  reserved = reserved_versions(model_directory)
  taken = sorted(set(versions) | set(reserved))
  if version is None:
    version = (max(taken) + 1) if taken else 1
    if version > MAX_VERSION:
      raise ValueError(
          f"{model_directory} already has version {max(taken)}, the largest "
          f"TF Serving accepts (int64); pass a free --version.")
  if (isinstance(version, bool) or not isinstance(version, int) or
      not 1 <= version <= MAX_VERSION):
    raise ValueError(f"version must be an integer in [1, {MAX_VERSION}] "
                     f"(TF Serving's versions are int64); got {version!r}.")
  path = os.path.join(model_directory, str(version))
  if version in reserved:
    raise ValueError(f"Version {version} of {model_directory} is being "
                     f"exported by process {reserved[version]}; pick another "
                     f"--version or omit it to use the next free one.")
  if tf.io.gfile.exists(path):
    next_free = max(taken) + 1
    raise ValueError(
        f"{path} already exists (versions present: "
        f"{', '.join(map(str, versions))}); pick another --version or omit it "
        f"to use the next one ({next_free}).")
  return path


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


@contextlib.contextmanager
def reserve_version(export_dir: str, model_name: str,
                    version: Optional[int] = None
                    ) -> Iterator[Tuple[str, str]]:
  """Yields (version directory, staging directory); publishes on success.

  The version is reserved atomically: under the model directory's lock,
  the version is picked and its staging directory (a hidden sibling; TF
  Serving ignores names that are not integers) created, so concurrent
  exports take different versions. The staging directory gets the
  umask's permissions (`mkdtemp` alone makes it 0700, unreadable to a
  server running as another user). On an exception it is removed and
  nothing is published.
  """
  model_directory = os.path.join(export_dir, check_model_name(model_name))
  with lock.DirectoryLock(model_directory,
                          "export (reserving a version)").acquire(
                              wait_seconds=60):
    final_path = version_directory(export_dir, model_name, version)
    staging = tempfile.mkdtemp(
        prefix=f".staging-{os.path.basename(final_path)}-pid{os.getpid()}-",
        dir=model_directory)
    os.chmod(staging, 0o777 & ~_umask())
  try:
    yield final_path, staging
    os.rename(staging, final_path)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
