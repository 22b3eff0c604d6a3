"""Helpers shared by the tests of tfglv.training and tfglv.rundir.

FAST keeps an in-process trainer run of the tiny config to seconds after
tracing (one device, small batches, one eval batch, a log line a step).
"""

import os

from tfglv import configs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The real CIFAR-10 subset beside the checkout; tests that need it skip
# where it is absent.
CIFAR_SUBSET = os.path.join(REPO, "..", "shared", "data",
                            "cifar10_subset.npz")
FAST = {"train.strategy": "one_device", "train.batch_size": "8",
        "train.init_batch_size": "16", "train.eval_batches": "1",
        "train.log_every": "1", "train.eval_posterior_samples": "2",
        "data.synthetic_size": "64", "data.shuffle_buffer": "16"}
# FAST without evaluations or samples before the last step.
FAST_QUIET = dict(FAST, **{"train.eval_posterior_samples": "1",
                           "train.eval_every": "1000",
                           "train.sample_every": "1000"})
# tiny at 32x32: the encoder needs a third level to reach 4x4.
TINY_32 = {"image_size": "32", "encoder.channels": "[8, 8, 8]"}
# TF warns when a distributed dataset is iterated inside tf.function.
TF_DATA_OPTIONS_WARNING = "ignore:To make it possible to preserve tf.data"


def tiny(settings=None, **values):
  """tiny with `settings` (default FAST), then `values` (a__b means a.b)."""
  overrides = dict(FAST if settings is None else settings)
  overrides.update({k.replace("__", "."): str(v) for k, v in values.items()})
  return configs.override(configs.get("tiny"), overrides)
