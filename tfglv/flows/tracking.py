"""Makes list-held Keras layers visible to `tf.train.Checkpoint`.

Keras 3 tracks layers kept in Python lists for its own purposes
(`trainable_variables`, `.keras` files), but TensorFlow's object-based
checkpoints only follow attributes that are trackable objects, so a layer that
lives only in a list is silently left out of a `tf.train.Checkpoint`. We keep
the lists for iteration and also set each layer as an attribute under its
unique name. Keras' tracker de-duplicates by identity, so no variable is
counted twice.
"""

import keras


def register(owner: keras.layers.Layer, layer: keras.layers.Layer):
  """Sets `layer` as `owner.<layer.name>` and returns it."""
  if hasattr(owner, layer.name) and getattr(owner, layer.name) is not layer:
    raise ValueError(f"{owner.name} already has an attribute {layer.name!r}.")
  setattr(owner, layer.name, layer)
  return layer
