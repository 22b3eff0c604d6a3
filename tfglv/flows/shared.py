"""One traced function per kind of flow block, called by all its repeats.

The full CIFAR-10 decoder repeats one refined Glow step up to 12 times per
level: each repeat has its own variables, but the same shapes and
settings. Traced as written, every repeat adds its ops (and its gradient's)
to the graph and Grappler optimises every copy: most of the minute that the
first training step took. Inside a `tf.function`, `SharedBlock` runs a
block (a Glow step, a prior block) as a call of one function per kind of
block, its variables passed in as tensors:

    f_kind(x, z, w_1, ..., w_n) = block(x, z), block's weights set to w_i

The function is traced on one block of its kind, its template, whose
variables read the tensors it is given (`keras.StatelessScope`). So a kind
is traced once, its gradient is built once, and its body, marked
`_noinline`, is optimised once by Grappler, however many blocks call it. A
kind is (layer class, config, variable shapes, direction, `cached`, input
shapes): blocks that differ in any of these never share a function. The
results are those of the inline blocks bit for bit (the same ops on the
same values; `tests/flows/test_shared.py`), but for the gradient of a
tensor that every block reads (z): it is summed per block first, then over
blocks, which may round its last bit differently.

A block runs inline, as before, when called eagerly, while ActNorm
initialises itself (an assignment inside the function would not reach the
variable), within `inlined()` (TF Lite conversion needs one flat graph), and
in training, when no other block of the flow is of its kind: a function
called once saves no tracing, and its call costs a few milliseconds a step
(the small bench size, 5 of whose 10 kinds have one block, stepped 1.045x
slower than inline with every block shared, 0.996x with those 5 inline).
"""

import collections
import contextlib
from typing import Optional

import keras
import tensorflow as tf

from tfglv import _compat
from tfglv.flows import base

# > 0 inside `inlined()`. Not thread-local: a distribution strategy traces
# its replicas in threads of its own.
_inline_depth = [0]


@contextlib.contextmanager
def inlined():
  """Within it, shared blocks trace their ops inline (one flat graph)."""
  _inline_depth[0] += 1
  try:
    yield
  finally:
    _inline_depth[0] -= 1


def block(owner: keras.layers.Layer, layer: base.FlowLayer, *,
          peers=None, initializing: bool = False, cached: bool = False
          ) -> base.FlowBijector:
  """`layer`'s bijector, sharing its traced function with every block of
  its kind under `owner` (whose model holds the functions).

  Inline while initialising, and in training (not `cached`) when no other
  block of `peers` (all the blocks `owner` runs; None: assume some) is of
  `layer`'s kind: the step is traced once, so a function called once saves
  no tracing, and its call boundary costs a little every step. Inference
  (`cached`) keeps it shared: an export traces the flow in every signature,
  and they all reuse the one function (a small run's export took 31-42 s
  so, 40-48 s with such blocks inline).
  """
  if initializing:
    return layer.make_bijector(initializing=True, cached=cached)
  if peers is not None and not cached:
    # Counted once per owner: its blocks are fixed when it is built.
    counts = _compat.untracked_dict(owner, "_shared_block_kind_counts")
    if not counts:
      counts.update(collections.Counter(_layer_kind(peer) for peer in peers))
    if counts.get(_layer_kind(layer), 0) < 2:
      return layer.make_bijector(cached=cached)
  return SharedBlock(owner, layer, cached=cached)


def _layer_kind(layer: base.FlowLayer) -> tuple:
  """What blocks of one kind have in common, before their inputs."""
  config = layer.get_config()
  config.pop("name", None)
  config.pop("seed", None)  # Initialisation only.
  return (type(layer), repr(sorted(config.items())),
          tuple((tuple(w.shape), w.dtype) for w in layer.weights))


def _spec(tensor: tf.Tensor) -> tf.TensorSpec:
  return tf.TensorSpec(tensor.shape, tensor.dtype)


def _functions(owner) -> dict:
  """The traced functions of `owner`'s blocks, outside Keras's tracking."""
  return _compat.untracked_dict(owner, "_shared_block_functions")


def tracing_count(owner) -> int:
  """How many block functions `owner` has traced (one per kind)."""
  return len(_functions(owner))


class SharedBlock(base.FlowBijector):
  """`layer.make_bijector(cached=cached)`, called through the function of
  its kind inside a `tf.function` (see the module docstring).

  Args:
    owner: the layer that keeps the functions (the decoder).
    layer: the block.
    cached: run the block on its inference cache.
  """

  def __init__(self, owner: keras.layers.Layer, layer: base.FlowLayer,
               cached: bool = False, validate_args: bool = False,
               name: Optional[str] = None):
    parameters = dict(locals())
    self._owner = owner
    self._layer = layer
    self._cached = cached
    self._inline = layer.make_bijector(cached=cached)
    self.conditional = self._inline.conditional
    super().__init__(
        forward_min_event_ndims=self._inline.forward_min_event_ndims,
        validate_args=validate_args, parameters=parameters,
        name=name or layer.name)

  def _kind(self, direction: str, x: tf.Tensor, z: Optional[tf.Tensor]):
    return (*_layer_kind(self._layer), direction, self._cached, _spec(x),
            None if z is None else _spec(z))

  def _trace(self, direction: str, x: tf.Tensor, z: Optional[tf.Tensor]):
    template, cached = self._layer, self._cached

    def run(x, z, weights):
      mapping = list(zip(template.weights, weights))
      with keras.StatelessScope(state_mapping=mapping):
        bijector = template.make_bijector(cached=cached)
        method = getattr(bijector, f"{direction}_and_log_det")
        return method(x, **({} if z is None else {"z": z}))

    weights = [tf.TensorSpec(w.shape, w.dtype) for w in template.weights]
    if z is None:
      python, signature = (lambda x, weights: run(x, None, weights),
                           [_spec(x), weights])
    else:
      python, signature = run, [_spec(x), _spec(z), weights]
    function = tf.function(python, input_signature=signature,
                           autograph=False,
                           experimental_attributes={"_noinline": True})
    # From the eager context: the body inherits no device or control
    # scope of the graph being built (a replica's, say).
    with tf.init_scope():
      concrete = function.get_concrete_function()
    if concrete.variables:
      # A variable outside the mapping would be the template's in every
      # block of the kind.
      raise AssertionError(
          f"{template.name}: the shared function reads variables it was not "
          f"given: {[v.name for v in concrete.variables]}.")
    return concrete

  def _call(self, direction: str, x, z):
    if tf.executing_eagerly() or _inline_depth[0]:
      method = getattr(self._inline, f"{direction}_and_log_det")
      return method(x, **({} if z is None else {"z": z}))
    x = tf.convert_to_tensor(x)
    z = None if z is None else tf.convert_to_tensor(z)
    functions = _functions(self._owner)
    kind = self._kind(direction, x, z)
    if kind not in functions:
      functions.setdefault(kind, self._trace(direction, x, z))
    weights = [tf.convert_to_tensor(w) for w in self._layer.weights]
    arguments = (x, weights) if z is None else (x, z, weights)
    return functions[kind](*arguments)

  def forward_and_log_det(self, x, z=None):
    return self._call("forward", x, z)

  def inverse_and_log_det(self, y, z=None):
    return self._call("inverse", y, z)
