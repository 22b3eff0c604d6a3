"""Constructor arguments stated once: attributes and Keras config together.

A Keras layer that can be rebuilt from its config used to name each
constructor argument three times: in the signature, in `self.x = x`, and in
`get_config`. `KeepsArguments.keep_arguments(x=x, ...)` does the last two in
one call, so a new argument cannot be saved without being an attribute, or
the reverse.

Keras's own automatic config (Keras 3 records the constructor arguments in
`Operation.__new__`) does not serve here: it gives up as soon as one
argument is not a plain value, and every tfglv layer passes a
`keras.DTypePolicy` down to its sub-layers.
"""


class KeepsArguments:
  """Mixin for a Keras layer whose config is (part of) its arguments.

  Put it before the Keras base class: `class L(KeepsArguments,
  keras.layers.Layer)`. In `__init__`, after `super().__init__(**kwargs)`,
  call `self.keep_arguments(name=value, ...)` with the arguments `from_config`
  must pass back; each becomes an attribute of the same name. A subclass
  may keep more, or `forget_arguments` one the base kept that its own
  signature does not take.
  """

  def keep_arguments(self, **arguments):
    kept = dict(getattr(self, "_kept_arguments", None) or {})
    kept.update(arguments)
    # A plain dict outside Keras's attribute tracking (`object.__setattr__`):
    # it holds values, never layers or variables.
    object.__setattr__(self, "_kept_arguments", kept)
    for name, value in arguments.items():
      setattr(self, name, value)

  def forget_arguments(self, *names):
    """Drops names from the config (they stay attributes)."""
    for name in names:
      self._kept_arguments.pop(name)

  def get_config(self):
    config = super().get_config()
    config.update(getattr(self, "_kept_arguments", None) or {})
    return config
