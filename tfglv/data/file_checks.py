"""Cheap integrity checks of the user's files, before anything is trained.

A damaged file must stop a run at its start with one line that names it,
not with a traceback at the step that first reads it (at every resume,
forever):

* `NpzArchive` opens an .npz and checks every member's header (shape and
  dtype) against the bytes it stores before reading any array, so a
  header claiming 715 GiB is refused instead of allocated; a member whose
  CRC fails, a plain .npy renamed to .npz and object arrays get their own
  message.
* `image_file_problem` reads a PNG/JPEG file's first and last bytes: its
  signature, and the end marker every whole file has (PNG's IEND chunk,
  JPEG's end-of-image marker). Only a file without the end marker (cut
  short, or with data appended after the image) is decoded, to tell the
  two apart, so a folder of 100k images is checked in seconds.
"""

import os
import zipfile
import zlib
from typing import Dict, Optional, Tuple

import numpy as np
import tensorflow as tf

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # A member first; an empty zip.
_NPY_SUFFIX = ".npy"
# Deflate expands a byte to at most ~1032 bytes.
_MAX_DEFLATE_RATIO = 1032
# What reading a damaged member raises (zlib: a corrupt compressed stream).
_READ_ERRORS = (ValueError, OSError, EOFError, RuntimeError,
                NotImplementedError, zipfile.BadZipFile, zlib.error)


class NpzArchive:
  """The arrays of an .npz (`np.savez`), read only after their headers fit.

  Like `np.load(path)` of an .npz: `files` lists the array names,
  `archive[name]` reads one, and it is a context manager. `headers` maps
  each name to its (dtype, shape) without reading the array. Every problem
  is a ValueError naming the file, the member and what is wrong.
  """

  def __init__(self, path: str):
    self.path = path
    with open(path, "rb") as f:
      start = f.read(len(_NPY_MAGIC))
    if start.startswith(_NPY_MAGIC):
      raise ValueError(
          f"npz file {path} is a single .npy array (np.save), not an .npz "
          f"archive of named arrays; write one with np.savez(file, "
          f"images=array) or np.savez(file, x_train=..., x_test=...).")
    if not start:
      raise ValueError(f"Cannot read npz file {path}: it is empty (0 bytes).")
    if not start.startswith(_ZIP_MAGICS):
      raise ValueError(f"Cannot read npz file {path}: it is not a zip "
                       f"archive (np.savez writes one); it starts with "
                       f"{start!r}.")
    try:
      self._zip = zipfile.ZipFile(path)
    except _READ_ERRORS as e:
      raise ValueError(f"Cannot read npz file {path}: {e}") from None
    try:
      self.headers = {
          info.filename[:-len(_NPY_SUFFIX)]: self._header(info)
          for info in self._zip.infolist()
          if info.filename.endswith(_NPY_SUFFIX)}
    except BaseException:
      self._zip.close()
      raise

  @property
  def files(self):
    return list(self.headers)

  def _problem(self, name: str, problem: str) -> ValueError:
    return ValueError(f"npz file {self.path}: member {name!r} {problem}")

  def _header(self, info: zipfile.ZipInfo) -> Tuple[np.dtype, Tuple]:
    name = info.filename[:-len(_NPY_SUFFIX)]
    stored = info.compress_type == zipfile.ZIP_STORED
    if info.file_size > info.compress_size * (1 if stored else
                                              _MAX_DEFLATE_RATIO):
      raise self._problem(name, f"claims {info.file_size:,} bytes but stores "
                          f"{info.compress_size:,}; the file is damaged.")
    try:
      with self._zip.open(info) as member:
        version = np.lib.format.read_magic(member)
        read_header = (np.lib.format.read_array_header_1_0
                       if version == (1, 0) else
                       np.lib.format.read_array_header_2_0)
        shape, _, dtype = read_header(member)
        offset = member.tell()
    except _READ_ERRORS as e:
      raise self._problem(name, f"has no readable .npy header: {e}") from None
    if dtype.hasobject:
      raise self._problem(name, f"holds Python objects (dtype {dtype}); "
                          f"store numeric arrays (allow_pickle is off).")
    needed = offset + int(np.prod(shape, dtype=object)) * dtype.itemsize
    if needed != info.file_size:
      raise self._problem(
          name, f"claims shape {shape} of {dtype} ({needed - offset:,} bytes "
          f"of data) but stores {info.file_size - offset:,}; the file is "
          f"damaged or was not written by np.savez.")
    return dtype, shape

  def __getitem__(self, name: str) -> np.ndarray:
    if name not in self.headers:
      raise KeyError(f"{name} is not an array of {self.path}")
    try:
      with self._zip.open(name + _NPY_SUFFIX) as member:
        array = np.lib.format.read_array(member, allow_pickle=False)
        member.read()  # Reaching the end checks the member's CRC.
    except _READ_ERRORS as e:
      raise self._problem(name, f"is damaged: {e}") from None
    return array

  def __enter__(self):
    return self

  def __exit__(self, *exception):
    self._zip.close()


# PNG: the 8-byte signature, and the IEND chunk (length 0, type, CRC) last.
_PNG = (b"\x89PNG\r\n\x1a\n", b"\x00\x00\x00\x00IEND\xaeB`\x82",
        "PNG", "IEND chunk")
# JPEG: the start-of-image marker and a first segment; end-of-image last.
_JPEG = (b"\xff\xd8\xff", b"\xff\xd9", "JPEG", "end-of-image marker")


def _decodes(path: str) -> bool:
  with tf.init_scope():  # Eagerly, also when a tf.function builds a dataset.
    try:
      tf.io.decode_image(tf.io.read_file(path), expand_animations=False)
      return True
    except tf.errors.OpError:
      return False


def image_file_problem(path: str) -> Optional[str]:
  """Why the file at `path` is not a whole PNG/JPEG image, or None."""
  try:
    with open(path, "rb") as image_file:
      head = image_file.read(8)
      size = image_file.seek(0, os.SEEK_END)
      image_file.seek(max(0, size - len(_PNG[1])))
      tail = image_file.read()
  except OSError as e:
    return f"cannot be opened ({e.strerror})"
  if not size:
    return "empty (0 bytes)"
  for signature, end, kind, end_name in (_PNG, _JPEG):
    if head.startswith(signature):
      if tail.endswith(end) or _decodes(path):
        return None
      return (f"truncated {kind} (no {end_name} at its end, and it does "
              f"not decode)")
  return f"not a PNG or JPEG file (it starts with {head!r})"


def bad_image_files(root: str, relative_paths) -> Dict[str, str]:
  """{relative path: problem} for the files under `root` that are not whole
  PNG/JPEG images."""
  problems = {}
  for relative in relative_paths:
    problem = image_file_problem(os.path.join(root, relative))
    if problem:
      problems[relative] = problem
  return problems
