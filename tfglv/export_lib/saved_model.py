"""The SavedModel: every signature, through `keras.export.ExportArchive`.

Keras 3 variables are not `tf.Variable`s, so a `tf.Module` that merely holds
the model saves no variables: it reloads in Python yet fails in
`saved_model_cli run` and in TF Serving's C++ loader ("Could not find
variable"). `ExportArchive` saves them as TF variables.

TF Serving watches `<base>/<model_name>/` and serves its integer-named
subdirectories as versions. `version_directory` picks the next free version,
and `export_tree` writes into a hidden staging directory that is renamed into
place at the end, so the server never sees a half-written version.
"""

import contextlib
import os
import re
import shutil
import tempfile
from typing import Iterator, Optional, Sequence

import keras
import tensorflow as tf

from tfglv.export_lib import signatures as signatures_lib

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


def existing_versions(model_directory: str) -> Sequence[int]:
  """The integer version directories under `model_directory`, sorted."""
  if not tf.io.gfile.isdir(model_directory):
    return []
  return sorted(int(name.rstrip("/"))
                for name in tf.io.gfile.listdir(model_directory)
                if name.rstrip("/").isdigit())


def version_directory(export_dir: str, model_name: str,
                      version: Optional[int] = None) -> str:
  """`<export_dir>/<model_name>/<version>`, the next version if None.

  Raises ValueError for a non-positive version or one that already exists
  (an export never overwrites a version TF Serving may be serving).
  """
  model_directory = os.path.join(export_dir, check_model_name(model_name))
  versions = existing_versions(model_directory)
  if version is None:
    version = (max(versions) + 1) if versions else 1
  if isinstance(version, bool) or not isinstance(version, int) or version < 1:
    raise ValueError(f"version must be a positive integer; got {version!r}.")
  path = os.path.join(model_directory, str(version))
  if tf.io.gfile.exists(path):
    raise ValueError(
        f"{path} already exists (versions present: "
        f"{', '.join(map(str, versions))}); pick another --version or omit it "
        f"to use the next one ({max(versions) + 1}).")
  return path


@contextlib.contextmanager
def export_tree(final_path: str) -> Iterator[str]:
  """Yields a staging directory that becomes `final_path` on success.

  The staging directory is a hidden sibling (TF Serving ignores names that
  are not integers); on an exception it is removed and nothing is published.
  """
  parent = os.path.dirname(final_path)
  os.makedirs(parent, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=f".staging-{os.path.basename(final_path)}-",
                             dir=parent)
  try:
    yield staging
    os.rename(staging, final_path)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
