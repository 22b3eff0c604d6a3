"""How the model's operations run: compiled, and from the inference cache.

Compiled. Called eagerly, `GLVAE.encode`, `decode`, `sample`, `switch`,
`interpolate`, `posterior`, `latents_from_noise`, `sample_latents` and the
evaluation operations (`compute_losses`, `bits_per_dim`,
`importance_weighted_bits_per_dim`) each run as one compiled graph instead
of op by op, as fast as a SavedModel of the same call (`bench/latency.py`).

    @compiled.inference("images")
    def encode(self, images): ...

* From the second call. Tracing costs about four eager calls (tiny: ~1 s
  against ~0.2 s; the full cifar10 glvae on 2 CPU cores: ~9 s against
  ~2.2 s, then ~0.8 s a call), so the first call of an operation runs op by
  op, with the same result, and the second traces it: a one-off call (a
  figure, a test) costs what it did, any repeated one runs compiled.

* Traces. The arguments the decorator names are converted to tensors
  (`ARGUMENTS` says how, by name) and traced with a relaxed leading (batch)
  dimension, so one trace serves every batch size; the others (`training`,
  `num_samples` of the losses) shape the graph and are static: each value
  gets its own trace, as does each state of the inference cache.
* Same results as eager, bit for bit. Grappler's remapping (fused
  convolution + bias + activation), arithmetic rewrites (reassociated sums)
  and constant folding change the last bits of floats (~40% of the values
  of v, a quarter of the KL terms on the tiny model); they are off for these
  graphs only, which costs no measurable time on CPU.
* Checks first. The converters run the eager path's argument checks
  (`tfglv.latents`, `tfglv.quantization`) before the call, with their
  messages: those that read values (finite and bounded latents and
  fractions) are skipped in a traced graph.
* Called inside another tf.function (the trainer's step, an export) or with
  `model.run_eagerly = True`, a method runs as written.

Inference cache (`InferenceMixin.set_inference_cache`): W^-1 and log|det W|
of the 1x1 convolutions and the weight-normalised kernels, held in
variables, so that decoding and exports invert no matrix.
"""

import functools
import inspect
from typing import Callable, NamedTuple

import tensorflow as tf

from tfglv import _compat
from tfglv import gc_pause
from tfglv import latents
from tfglv import quantization
from tfglv.layers import weight_norm

# The Grappler rewrites that make a graph's floats differ from eager ones.
_REWRITES_OFF = ("remapping", "arithmetic_optimization",
                 "constant_folding")


class Argument(NamedTuple):
  """How one argument enters the compiled function.

  convert(model, name, values) -> the tensor of argument `name`, after the
  eager path's checks of it (`values`: every argument of the call, by
  name); batched: whether its leading dimension is relaxed.
  """
  convert: Callable
  batched: bool = True


def _images(model, name, values):
  return quantization.check_images(values[name], model.config.image_shape)


def _latents(model, name, values):
  # The eager checks (shapes, N >= 1, finite and bounded values) of z and
  # v together; z comes first in `decode`'s signature, so v is checked.
  del name
  z, _ = latents.check_latents(values["z"], values["v"],
                               model.config.image_shape, model.latent_dim)
  return z


def _floats(model, name, values):
  del model
  return tf.convert_to_tensor(values[name], tf.float32)


def _fractions(model, name, values):
  latents.check_fractions(name, values[name])
  return _floats(model, name, values)


def _temperature(model, name, values):
  del model
  latents.check_temperature(values[name])
  return tf.convert_to_tensor(values[name], tf.float32)


def _count(model, name, values):
  del model
  latents.check_num_samples(values[name])
  return tf.convert_to_tensor(values[name], tf.int32)


def _seed(model, name, values):
  del model
  return latents.as_seed(values[name])


# How each tensor argument of the model's operations is checked and
# converted, by name: as the eager path checks it.
ARGUMENTS = {
    "images": Argument(_images), "global_images": Argument(_images),
    "local_images": Argument(_images), "images_start": Argument(_images),
    "images_end": Argument(_images),
    "z": Argument(_latents), "v": Argument(_floats),
    "z_noise": Argument(_floats), "v_noise": Argument(_floats),
    "z_fractions": Argument(_fractions), "v_fractions": Argument(_fractions),
    "temperature": Argument(_temperature, batched=False),
    "num_samples": Argument(_count, batched=False),
    "seed": Argument(_seed, batched=False),
}


def _spec(tensor: tf.Tensor, batched: bool) -> tf.TensorSpec:
  shape = tensor.shape.as_list()
  # An empty batch keeps its 0, so the traced checks reject it as eager
  # code does.
  if batched and shape and shape[0] != 0:
    shape[0] = None
  return tf.TensorSpec(shape, tensor.dtype)


def _functions(model) -> dict:
  """The model's traced functions, outside Keras's and TF's tracking."""
  return _compat.untracked_dict(model, "_compiled_functions")


def _run(method, model, static, names, *tensors):
  return method(model, **static, **dict(zip(names, tensors)))


def inference(*names: str):
  """Decorator: the method runs compiled when called eagerly (see module
  docstring); `names` are its tensor arguments (keys of `ARGUMENTS`)."""
  arguments = {name: ARGUMENTS[name] for name in names}

  def decorate(method):
    signature = inspect.signature(method)
    tensor_names = [n for n in signature.parameters if n in arguments]
    assert len(tensor_names) == len(names), (method.__name__, names)

    @functools.wraps(method)
    def call(model, *args, **kwargs):
      if (not tf.executing_eagerly() or tf.inside_function() or
          model.run_eagerly):
        return method(model, *args, **kwargs)
      bound = signature.bind(model, *args, **kwargs)
      bound.apply_defaults()
      values = dict(bound.arguments)
      del values[next(iter(signature.parameters))]  # The model itself.
      static = {n: v for n, v in values.items() if n not in arguments}
      try:
        static_key = tuple(sorted(static.items()))
        hash(static_key)
      except TypeError:  # An unhashable static argument: no cache key.
        return method(model, *args, **kwargs)
      tensors = [arguments[n].convert(model, n, values)
                 for n in tensor_names]
      specs = tuple(_spec(t, arguments[n].batched)
                    for n, t in zip(tensor_names, tensors))
      key = (method.__name__, static_key, specs,
             model._inference_cache)  # pylint: disable=protected-access
      functions = _functions(model)
      if key not in functions:  # The first call: op by op.
        functions[key] = None
        return method(model, *args, **kwargs)
      with _compat.graph_rewrites_off(*_REWRITES_OFF):
        if functions[key] is None:
          # A partial, not a closure: TF counts retraces per code object,
          # and would warn of "retracing" when several of these first trace.
          function = tf.function(
              functools.partial(_run, method, model, static, tensor_names),
              input_signature=specs, autograph=False)
          # Called directly, the concrete function skips tf.function's
          # dispatch (its cache lookup hashes every captured variable).
          # Traced with the garbage collector paused (`gc_pause`).
          with gc_pause.paused():
            functions[key] = (function, function.get_concrete_function())
        return functions[key][1](*tensors)

    return call

  return decorate


def without_rewrites(function: Callable) -> Callable:
  """`function`, whose tf.functions run without the rewrites above (Keras's
  train and test functions: fit computes what `compute_losses` does)."""

  @functools.wraps(function)
  def call(*args, **kwargs):
    with _compat.graph_rewrites_off(*_REWRITES_OFF):
      return function(*args, **kwargs)

  return call


def tracing_count(model, method_name: str) -> int:
  """How many graphs `method_name` of `model` has traced so far."""
  return sum(entry[0].experimental_get_tracing_count()
             for key, entry in _functions(model).items()
             if key[0] == method_name and entry is not None)


class InferenceMixin:
  """The inference cache of `tfglv.GLVAE` (see module docstring)."""

  # Whether encode/decode/sample/compute_losses read the inference cache.
  _inference_cache = False

  def set_inference_cache(self, enabled: bool = True):
    """Caches W^-1 and log|det W| of every 1x1 conv, and the kernel
    g v / ||v|| of every weight-normalised layer, and makes encode, decode,
    sample and compute_losses read them (`cached=True` to every bijector
    and network): decoding and exports then invert no matrix.

    Re-enable after any weight change; training must run with it disabled
    (`compute_losses(training=True)` refuses otherwise).
    """
    if enabled:
      for layer in self.conv1x1_layers + self._layers_of(
          weight_norm.WeightNormLayer):
        layer.refresh_cache()
    self._inference_cache = bool(enabled)
