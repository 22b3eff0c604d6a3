"""The checkpoint layout of every variant is frozen: 0.2 runs must restore.

A checkpoint finds a model variable by its object path (attribute names of
the Keras layers) and an optimizer slot by its position in the optimizer's
variable list, which follows the order of `model.trainable_variables`. A
refactor that renames an attribute, nests a layer differently or builds
layers in another order breaks every saved run, or silently pairs Adam's
moments with the wrong weights. The fixture was written by tfglv 0.2;
regenerate it (`python tests/test_checkpoint_layout.py`) only for a
deliberate, documented layout change.
"""

import json
import os
import sys
import tempfile

import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfglv import configs  # pylint: disable=g-import-not-at-top
from tfglv import model as model_lib
from tfglv.rundir import checkpoints
from tfglv.training import optimizer as optimizer_lib

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures",
                       "checkpoint_layout_tiny.json")
VARIANTS = configs.MODEL_VARIANTS
_OFFSET = 1000


def layout(variant):
  """{"checkpoint": [[key, shape]...], "optimizer": [slot names in order]}."""
  config = configs.get("tiny", model=variant)
  model = model_lib.build_model(config)
  optimizer = optimizer_lib.build_optimizer(config.train)
  optimizer.build(model.trainable_variables)
  step = tf.Variable(0, dtype=tf.int64)
  state = checkpoints.make_checkpoint(model, optimizer, step, tf.Variable(
      0, dtype=tf.int64))
  # Variable i holds 1000 + i, so the checkpoint tells which saved object each
  # position of `trainable_variables` (and of Adam's slots) is.
  for index, variable in enumerate(model.trainable_variables):
    variable.assign(tf.fill(variable.shape, float(_OFFSET + index)))
  with tempfile.TemporaryDirectory() as directory:
    path = state.save(os.path.join(directory, "ckpt"))
    keys = [[name, list(shape)] for name, shape in tf.train.list_variables(path)
            if not name.startswith("_CHECKPOINTABLE_OBJECT_GRAPH")]
    # Alone, the model saves each variable under its own object path.
    path = checkpoints.make_checkpoint(model).save(
        os.path.join(directory, "model"))
    reader = tf.train.load_checkpoint(path)
    order = {}
    for name, _ in tf.train.list_variables(path):
      value = reader.get_tensor(name)
      if (name.startswith("model/") and value.dtype.kind == "f" and
          value.size and value.flat[0] >= _OFFSET and
          (value == value.flat[0]).all()):
        order[int(value.flat[0]) - _OFFSET] = name
  return {"checkpoint": keys,
          "optimizer": [v.name for v in optimizer.variables],
          "trainable": [order.get(i) for i in
                        range(len(model.trainable_variables))]}


def test_checkpoint_layout_is_unchanged():
  with open(FIXTURE) as f:
    expected = json.load(f)
  for variant in VARIANTS:
    actual = layout(variant)
    for part in ("checkpoint", "optimizer", "trainable"):
      missing = [k for k in expected[variant][part] if k not in actual[part]]
      added = [k for k in actual[part] if k not in expected[variant][part]]
      assert not missing and not added, (variant, part, missing[:5], added[:5])
      assert actual[part] == expected[variant][part], (variant, part,
                                                        "order changed")


if __name__ == "__main__":
  with open(FIXTURE, "w") as f:
    json.dump({v: layout(v) for v in VARIANTS}, f, indent=0)
  print("wrote", FIXTURE)
