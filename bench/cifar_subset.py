"""Where the benchmarks find the real CIFAR-10 subset: this module alone.

The subset is an .npz of uint8 `x_train` [N, 32, 32, 3] and `x_test` (with
`y_train`, `y_test`). Its path is the environment variable
TFGLV_CIFAR_SUBSET when set, else `../shared/data/cifar10_subset.npz`
beside the checkout (where the project keeps it; the tests look there too).

Benchmarks that only need realistic pixels (timing, FLOPs, memory) use
synthetic images when the default file is absent; a path set through
TFGLV_CIFAR_SUBSET must exist. `bench.train_variants` needs the real data:
its --npz flag defaults to `path()`.

    TFGLV_CIFAR_SUBSET=/data/cifar10_subset.npz python -m bench.flops
"""

import os
from typing import Optional

import numpy as np

ENV = "TFGLV_CIFAR_SUBSET"
_CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT = os.path.join(_CHECKOUT, "..", "shared", "data",
                       "cifar10_subset.npz")


def path() -> str:
  """$TFGLV_CIFAR_SUBSET when set, else DEFAULT."""
  return os.environ.get(ENV) or DEFAULT


def find() -> Optional[str]:
  """The subset's path; None where the default file is absent.

  Raises:
    FileNotFoundError: TFGLV_CIFAR_SUBSET names a file that does not exist.
  """
  where = path()
  if os.path.isfile(where):
    return where
  if os.environ.get(ENV):
    raise FileNotFoundError(
        f"{ENV}={where!r} is not a file; point it at the CIFAR-10 subset "
        f".npz, or unset it to use {DEFAULT} (synthetic images where that "
        f"is absent).")
  return None


def load(split: str, count: int) -> Optional[np.ndarray]:
  """uint8 [count, 32, 32, 3]: the first images of `split`; None if absent."""
  where = find()
  if where is None:
    return None
  with np.load(where) as data:
    return data[f"x_{split}"][:count]
