"""Saving and loading the model the Keras way, and from a training run.

    model.save("model.keras");  model = keras.models.load_model("model.keras")
    model.save_weights("model.weights.h5");  model.load_weights(...)
    model.load_weights("/tmp/tfglv_tiny/checkpoints")   # a train.main run

A `.keras` file holds the model's config (the `ModelConfig` as a dict),
the tfglv version that wrote it and the format of its weights
(`KERAS_FORMAT`), and every variable, ActNorm's `initialized` flags and
the inference caches included. A file of another format is refused with a
message naming both versions, before any weight is read.

`load_weights` also takes the `tf.train.Checkpoint` of a training run (its
`checkpoints/` directory for the latest, or one `ckpt-<step>` prefix); it
restores the model's variables alone, and refuses a checkpoint of another
model.
"""

import tensorflow as tf

import tfglv
from tfglv import configs

# The layout of the weights in `.keras` and `.weights.h5` files. Keras
# places them by walking the model's attributes in name order (the layer
# lists `actnorm_layers` and `conv1x1_layers` included), so bump it when a
# change moves, renames or adds a variable or a layer-valued attribute.
KERAS_FORMAT = 1
# The model's attributes at the top of the trainer's checkpoints (frozen by
# tests/test_checkpoint_layout.py).
CHECKPOINT_LAYERS = ("encoder", "prior", "decoder", "latent_gaussian")


class SavingMixin:
  """`get_config`/`from_config` with the format check, and `load_weights`
  of training checkpoints; a mixin of `tfglv.GLVAE` (see module docstring).
  """

  def get_config(self):
    return {"config": configs.to_dict(self.config), "name": self.name,
            "tfglv_version": tfglv.__version__, "keras_format": KERAS_FORMAT}

  @classmethod
  def from_config(cls, config):
    saved_format = config.get("keras_format", KERAS_FORMAT)
    saved_version = config.get("tfglv_version", "unknown")
    if saved_format != KERAS_FORMAT:
      raise ValueError(
          f"This model was saved by tfglv {saved_version} (weights format "
          f"{saved_format}); tfglv {tfglv.__version__} reads weights format "
          f"{KERAS_FORMAT} only. Load it with tfglv {saved_version}, or "
          f"load a training run's checkpoint with model.load_weights.")
    values = config["config"]
    try:
      if "variant" not in values:  # Saved by 0.2: a whole run's config.
        values = configs.to_dict(configs.from_dict(values).model)
      model_config = configs.model_from_dict(values)
    except (KeyError, TypeError, ValueError) as error:
      raise ValueError(
          f"This model was saved by tfglv {saved_version}, whose model "
          f"config tfglv {tfglv.__version__} cannot read: "
          f"{str(error).splitlines()[0]}") from None
    return cls(model_config, name=config.get("name"))

  def load_weights(self, filepath, *args, **kwargs):
    """Keras's `load_weights`; also takes a training run's checkpoint.

    Args:
      filepath: a `.weights.h5` or `.keras` file (Keras), a checkpoint
        directory of a training run (`<workdir>/checkpoints`: its latest
        checkpoint), or one checkpoint's prefix (`.../ckpt-300`).
    """
    prefix = _training_checkpoint(str(filepath))
    if prefix is None:
      return super().load_weights(filepath, *args, **kwargs)
    layers = {name: getattr(self, name) for name in CHECKPOINT_LAYERS
              if getattr(self, name, None) is not None}
    root = tf.train.Checkpoint(model=tf.train.Checkpoint(**layers))
    try:
      root.restore(prefix).expect_partial().assert_existing_objects_matched()
      extra = _unmatched_model_objects(prefix, root)
      if extra:
        raise ValueError(f"it holds {len(extra)} objects this model has not, "
                         f"e.g. {extra[0]}")
    except (AssertionError, ValueError, tf.errors.OpError) as error:
      raise ValueError(
          f"Checkpoint {prefix} does not fit this model ({self.variant}, "
          f"image shape {self.config.image_shape}): "
          f"{str(error).splitlines()[0]}") from None
    if self._inference_cache:  # pylint: disable=protected-access
      self.set_inference_cache(True)  # The restored caches may be stale.
    return None


def _unmatched_model_objects(prefix: str, root) -> list:
  """Paths of the objects under "model" in the checkpoint that `root` has
  not (a glvae checkpoint read by a glow model: its encoder, ...)."""
  view = tf.train.CheckpointView(prefix)
  matched = set(view.match(root))
  start = view.children(0)["model"]
  seen, queue, unmatched = {start}, [(start, "model")], []
  while queue:
    node, path = queue.pop(0)
    if node not in matched:
      unmatched.append(path)
    for name, child in view.children(node).items():
      if child not in seen:
        seen.add(child)
        queue.append((child, f"{path}/{name}"))
  return unmatched


def _training_checkpoint(path: str):
  """The checkpoint prefix `path` names; None: not a tf.train checkpoint."""
  if path.endswith((".keras", ".h5", ".json")):
    return None
  if tf.io.gfile.isdir(path):
    latest = tf.train.latest_checkpoint(path)
    if latest is None:
      raise ValueError(
          f"{path} holds no checkpoint state file; pass a training run's "
          f"checkpoints directory (<workdir>/checkpoints), one checkpoint "
          f"(.../ckpt-<step>), or a .weights.h5 or .keras file.")
    return latest
  if tf.io.gfile.exists(path + ".index"):
    return path
  return None
