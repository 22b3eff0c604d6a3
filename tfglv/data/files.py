"""Image sets read from the user's own files: one .npz, or a folder of images.

Both are held in memory as columns of N rows (`{"image": uint8 [N,H,W,C],
"label": int64 [N]}` for npz, `{"path": str [N], "label": int64 [N]}` for a
folder, decoded lazily) and split deterministically into train and test.
A label of -1 means "no class label".
"""

import functools
import hashlib
import os
from typing import Dict, List, Tuple

from absl import logging
import numpy as np

from tfglv import configs
from tfglv.data import file_checks

# A single image array is split so that its last TEST_FRACTION is the test set.
TEST_FRACTION = 0.1
# The fewest images of one array that leave both splits non-empty.
MIN_SINGLE_ARRAY_IMAGES = next(n for n in range(2, 10 ** 6)
                               if 1 <= round(n * TEST_FRACTION) < n)
NPZ_PAIR_KEYS = (("x_train", "y_train"), ("x_test", "y_test"))
NPZ_SINGLE_KEYS = (("images", "labels"), ("x", "y"))
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
NO_LABEL = -1

Columns = Dict[str, np.ndarray]


def _describe(archive: file_checks.NpzArchive) -> str:
  return ", ".join(f"{key} ({dtype}, {shape})"
                   for key, (dtype, shape) in archive.headers.items()
                   ) or "nothing"


def _check_images(key: str, images: np.ndarray, path: str) -> np.ndarray:
  """Returns images as uint8 [N, H, W, C] or raises a ValueError."""
  if images.dtype != np.uint8:
    raise ValueError(
        f"npz file {path}: array {key!r} has dtype {images.dtype}, but images "
        f"must be uint8 in [0, 255] (e.g. np.round(x * 255).astype(np.uint8) "
        f"for floats in [0, 1]).")
  if images.ndim == 3:  # [N, H, W]: one grey channel.
    images = images[..., None]
  if images.ndim != 4:
    raise ValueError(
        f"npz file {path}: array {key!r} has shape {images.shape} (rank "
        f"{images.ndim}); images must be [N, H, W, C] or [N, H, W].")
  if images.shape[1] in (1, 3, 4) and images.shape[3] not in (1, 3, 4):
    raise ValueError(
        f"npz file {path}: array {key!r} has shape {images.shape}, which looks "
        f"channels-first; store images as [N, H, W, C] "
        f"(np.transpose(x, (0, 2, 3, 1))).")
  if not len(images):
    raise ValueError(f"npz file {path}: array {key!r} holds no images.")
  return images


def labels_as_vector(labels, what: str) -> np.ndarray:
  """Labels of shape [N] or [N, 1] (Keras' CIFAR-10 loader) as [N].

  Raises a ValueError naming `what` for any other shape.
  """
  labels = np.asarray(labels)
  if labels.ndim == 2 and labels.shape[1] == 1:
    labels = labels[:, 0]
  if labels.ndim != 1:
    raise ValueError(f"{what} must have shape [N] or [N, 1]; got shape "
                     f"{labels.shape}.")
  return labels


def _check_labels(key: str, labels: np.ndarray, count: int,
                  path: str) -> np.ndarray:
  labels = np.asarray(labels)
  if labels.dtype.kind not in "iu":
    raise ValueError(f"npz file {path}: labels {key!r} have dtype "
                     f"{labels.dtype}; expected integers.")
  labels = labels_as_vector(labels, f"npz file {path}: labels {key!r}")
  if len(labels) != count:
    raise ValueError(f"npz file {path}: labels {key!r} have {len(labels)} "
                     f"entries for {count} images.")
  return labels.astype(np.int64)


@functools.lru_cache(maxsize=2)
def _load_npz_cached(path: str, mtime: float) -> Dict[str, Columns]:
  del mtime  # Only part of the cache key: a rewritten file is read again.
  try:
    archive = file_checks.NpzArchive(path)
  except OSError as e:
    raise ValueError(f"Cannot read npz file {path}: {e}") from None
  with archive:
    keys = set(archive.files)
    (train_x, train_y), (test_x, test_y) = NPZ_PAIR_KEYS
    if train_x in keys or test_x in keys:
      if not {train_x, test_x} <= keys:
        raise ValueError(
            f"npz file {path} has only one of {train_x!r}/{test_x!r}; give "
            f"both, or one array named 'images' (or 'x') whose last "
            f"{TEST_FRACTION:.0%} becomes the test split. Found: "
            f"{_describe(archive)}.")
      splits = {}
      has_labels = {train_y, test_y} <= keys
      for split, x_key, y_key in (("train", train_x, train_y),
                                  ("test", test_x, test_y)):
        images = _check_images(x_key, archive[x_key], path)
        labels = (_check_labels(y_key, archive[y_key], len(images), path)
                  if has_labels else
                  np.full(len(images), NO_LABEL, np.int64))
        splits[split] = {"image": images, "label": labels}
      return splits
    for x_key, y_key in NPZ_SINGLE_KEYS:
      if x_key in keys:
        images = _check_images(x_key, archive[x_key], path)
        labels = (_check_labels(y_key, archive[y_key], len(images), path)
                  if y_key in keys else
                  np.full(len(images), NO_LABEL, np.int64))
        num_test = int(round(len(images) * TEST_FRACTION))
        if num_test < 1 or num_test >= len(images):
          raise ValueError(
              f"npz file {path}: {len(images)} images in {x_key!r} are too "
              f"few to split off {TEST_FRACTION:.0%} as a test set; need at "
              f"least {MIN_SINGLE_ARRAY_IMAGES} images, or give x_train and "
              f"x_test.")
        cut = len(images) - num_test
        return {"train": {"image": images[:cut], "label": labels[:cut]},
                "test": {"image": images[cut:], "label": labels[cut:]}}
    raise ValueError(
        f"npz file {path} has no image arrays: expected uint8 arrays "
        f"'x_train' and 'x_test' (optional 'y_train'/'y_test'), or one array "
        f"'images' or 'x' (optional 'labels'/'y'). Found: "
        f"{_describe(archive)}.")


def load_npz(path: str) -> Dict[str, Columns]:
  """Reads and validates an .npz of uint8 images.

  Returns:
    {"train": columns, "test": columns}, each {"image": uint8 [N, H, W, C],
    "label": int64 [N]} (labels -1 when the file has none).
  """
  if not path:
    raise ValueError("dataset 'npz' needs data.path: the .npz file to read.")
  if not os.path.isfile(path):
    raise ValueError(f"npz file not found: {path!r} (data.path).")
  return _load_npz_cached(os.path.abspath(path), os.path.getmtime(path))


def _is_test_file(relative_path: str) -> bool:
  """Deterministic ~10% test split from the file name (stable across runs)."""
  digest = hashlib.sha1(relative_path.encode("utf-8")).digest()
  return int.from_bytes(digest[:4], "big") % 1000 < TEST_FRACTION * 1000


def _list_images(root: str) -> List[str]:
  found = []
  for directory, subdirectories, names in os.walk(root, followlinks=True):
    subdirectories.sort()
    for name in sorted(names):
      if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("."):
        found.append(os.path.relpath(os.path.join(directory, name), root))
  return found


# A message names at most this many bad files (and counts the rest).
MAX_NAMED_FILES = 10


def _stat(path: str):
  try:
    status = os.stat(path)
  except OSError:  # A broken link: the check names it.
    return None
  return status.st_size, status.st_mtime_ns


@functools.lru_cache(maxsize=4)
def _bad_images_cached(root: str, files_and_stats) -> Dict[str, str]:
  return file_checks.bad_image_files(root, [f for f, _ in files_and_stats])


@functools.lru_cache(maxsize=16)
def _warn_once(message: str):
  # Every pipeline of a run lists the folder again; one warning is enough.
  logging.warning("%s", message)


def _usable_images(root: str, relative_paths: List[str],
                   on_bad_image: str) -> List[str]:
  """The files that are whole PNG/JPEG images (`file_checks`).

  The others raise a ValueError that names them (`on_bad_image` "error"),
  or are left out with a warning that names them ("skip"). Each file is
  checked once per process while its size and modification time stay.
  """
  if on_bad_image not in configs.BAD_IMAGE_ACTIONS:
    raise ValueError(f"Unknown data.on_bad_image {on_bad_image!r}; allowed: "
                     f"{', '.join(configs.BAD_IMAGE_ACTIONS)}.")
  files_and_stats = tuple((relative, _stat(os.path.join(root, relative)))
                          for relative in relative_paths)
  bad = _bad_images_cached(root, files_and_stats)
  if not bad:
    return relative_paths
  named = list(bad.items())[:MAX_NAMED_FILES]
  listing = "; ".join(f"{name}: {problem}" for name, problem in named)
  if len(bad) > len(named):
    listing += f"; and {len(bad) - len(named)} more"
  summary = (f"image folder {root!r}: {len(bad)} of {len(relative_paths)} "
             f"files are not readable PNG/JPEG images - {listing}")
  if on_bad_image == "error" or len(bad) == len(relative_paths):
    raise ValueError(f"{summary}. Remove or repair them, or set "
                     f"data.on_bad_image=skip to train without them.")
  _warn_once(f"{summary}. Skipped (data.on_bad_image=skip).")
  return [relative for relative in relative_paths if relative not in bad]


def _folder_labels(relative_paths: List[str]) -> Tuple[np.ndarray, List[str]]:
  """Labels images by their first-level sub-folder when all have one."""
  tops = [p.split(os.sep)[0] if os.sep in p else None for p in relative_paths]
  if None in tops or len(set(tops)) < 2:
    return np.full(len(relative_paths), NO_LABEL, np.int64), []
  class_names = sorted(set(tops))
  index = {name: i for i, name in enumerate(class_names)}
  return np.array([index[t] for t in tops], np.int64), class_names


def load_folder(path: str, on_bad_image: str = "error"
                ) -> Dict[str, Columns]:
  """Lists the PNG/JPEG images under `path`, recursively, and splits them.

  An image is in the test split when a hash of its path relative to `path`
  falls in the first 10%; adding files never moves existing ones between
  splits. Images in first-level sub-folders (two or more) get the sorted
  sub-folder index as label, others -1. A file that is not a whole PNG/JPEG
  image (`file_checks.image_file_problem`) raises a ValueError naming it, or
  with `on_bad_image="skip"` is left out with a warning naming it.

  Returns:
    {"train": columns, "test": columns}, each {"path": str [N],
    "label": int64 [N]}.
  """
  if not path:
    raise ValueError("dataset 'folder' needs data.path: a directory of "
                     "PNG/JPEG images.")
  if not os.path.isdir(path):
    raise ValueError(f"image folder not found: {path!r} (data.path).")
  relative = _list_images(path)
  if not relative:
    raise ValueError(
        f"image folder {path!r} has no images; expected files ending in "
        f"{', '.join(IMAGE_EXTENSIONS)} (searched recursively).")
  labels, _ = _folder_labels(relative)  # From every file: stable indices.
  usable = _usable_images(path, relative, on_bad_image)
  labels = labels[np.isin(relative, usable)]
  relative = usable
  is_test = np.array([_is_test_file(p) for p in relative], bool)
  full = np.array([os.path.join(path, p) for p in relative])
  return {split: {"path": full[chosen], "label": labels[chosen]}
          for split, chosen in (("train", ~is_test), ("test", is_test))}
