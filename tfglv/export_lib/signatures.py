"""The exported functions and their fixed input specs.

Every signature takes and returns named tensors. N is the batch: free in the
SavedModel, fixed in TF Lite. d_z is the model's latent size (0 for "glow"
and "glow_original", which have no global code: their z tensors are
[N, 0]).

    encode(images uint8 [N, H, W, C])
        -> z float32 [N, d_z]        posterior mean of q(z|x)
           z_scale float32 [N, d_z]  posterior standard deviation
           v float32 [N, H, W, C]    local code, v = f(x; z) at bin centres
    decode(z float32 [N, d_z], v float32 [N, H, W, C])
        -> images uint8 [N, H, W, C]              decode(encode(x)) == x
    sample(z_noise float32 [N, d_z], v_noise float32 [N, H, W, C],
           temperature float32 [])
        -> images uint8 [N, H, W, C]
           z = g^-1(z_noise) through the prior flow (temperature 1),
           v = temperature * v_noise; deterministic given its inputs.
    sample_from_seed(seed int32 [2], num_samples int32 [],
                     temperature float32 [])
        -> images uint8 [num_samples, H, W, C]
           `GLVAE.sample(num_samples, temperature, seed)`: the noise drawn
           by stateless RNG from `seed`.
    switch(global_images uint8 [N, H, W, C], local_images uint8 [N, H, W, C])
        -> images uint8 [N, H, W, C]   decode(z(global_images), v(local_images))
    interpolate(images_start uint8 [N, H, W, C], images_end uint8 [N, H, W, C],
                z_fractions float32 [A], v_fractions float32 [B])
        -> images uint8 [N, A, B, H, W, C]
           decode((1 - a) z_start + a z_end, (1 - b) v_start + b v_end)
           for every a in z_fractions and b in v_fractions (the paper's
           two-dimensional interpolation).

`serving_default` is `encode`. Each signature is the `GLVAE` method of its
name (`sample`: `GLVAE.latents_from_noise`, then `decode`) behind the input
checks below; the model alone defines what it computes.

Inputs are checked in the graph (rank, fixed sizes, no empty batch, finite
floats within the bounds where the math holds (`latents`: codes within
+-MAX_LATENT_ABS, temperature in (0, MAX_TEMPERATURE], interpolation
fractions in FRACTION_RANGE), matching batches, num_samples >= 1, at most
MAX_GENERATED_IMAGES images from sample_from_seed and interpolate, whose
requests are a few bytes): TF's own signature check is skipped when
a Python caller passes tensors, and the in-graph check also guards TF
Serving. The failure names the expected spec, e.g. "assertion failed:
[decode: input v must be float32 [N, 32, 32, 3]; got shape] [1 16 16 3]".
"""

import dataclasses
import math
from typing import Callable, Dict, List, Optional, Sequence

import tensorflow as tf

from tfglv import configs
from tfglv.configs import checks
from tfglv import latents

SIGNATURE_NAMES = ("encode", "decode", "sample", "sample_from_seed", "switch",
                   "interpolate")
SERVING_DEFAULT = "encode"
# A request of a few bytes (sample_from_seed's num_samples, interpolate's
# fractions) must not make the server allocate without bound.
MAX_GENERATED_IMAGES = 1024
# Names of free dimensions, in order, where they are not just the batch N.
_FREE_DIMENSIONS = {
    ("sample_from_seed", "images"): ("num_samples",),
    ("interpolate", "z_fractions"): ("A",),
    ("interpolate", "v_fractions"): ("B",),
    ("interpolate", "images"): ("N", "A", "B"),
}


def describe(spec: tf.TensorSpec, free_dimensions: Sequence[str] = ("N",)
             ) -> str:
  """'float32 [N, 32, 32, 3]': a spec as the README and errors write it."""
  names = iter(free_dimensions)
  dims = [next(names) if d is None else str(d) for d in spec.shape]
  return f"{spec.dtype.name} [{', '.join(dims)}]"


@dataclasses.dataclass(frozen=True)
class SignatureSpec:
  """Named input and output specs of one signature, in call order."""
  name: str
  inputs: Dict[str, tf.TensorSpec]
  outputs: Dict[str, tf.TensorSpec]

  @property
  def input_signature(self) -> List[tf.TensorSpec]:
    return list(self.inputs.values())

  def describe_input(self, key: str) -> str:
    return describe(self.inputs[key],
                    _FREE_DIMENSIONS.get((self.name, key), ("N",)))

  def describe_output(self, key: str) -> str:
    return describe(self.outputs[key],
                    _FREE_DIMENSIONS.get((self.name, key), ("N",)))


def latent_dim(config: configs.ModelConfig) -> int:
  """d_z of the exported tensors: 0 for "glow" and "glow_original", which
  have no z."""
  return (0 if config.variant in checks.VARIANTS_WITHOUT_Z else
          config.latent_dim)


def signature_specs(config: configs.ModelConfig, batch_size: Optional[int] = None
                    ) -> Dict[str, SignatureSpec]:
  """The specs of every signature for `config`; `batch_size` fixes N."""
  height, width, channels = config.image_shape
  n = batch_size
  d_z = latent_dim(config)

  def spec(shape, dtype, name):
    return tf.TensorSpec(shape, dtype, name=name)

  def images(name, batch=n):
    return spec([batch, height, width, channels], tf.uint8, name)

  def v(name):
    return spec([n, height, width, channels], tf.float32, name)

  def z(name):
    return spec([n, d_z], tf.float32, name)

  temperature = spec([], tf.float32, "temperature")
  output_images = {"images": images("images")}
  specs = [
      SignatureSpec("encode", {"images": images("images")},
                    {"z": z("z"), "z_scale": z("z_scale"), "v": v("v")}),
      SignatureSpec("decode", {"z": z("z"), "v": v("v")}, output_images),
      SignatureSpec("sample", {"z_noise": z("z_noise"),
                               "v_noise": v("v_noise"),
                               "temperature": temperature}, output_images),
      SignatureSpec("sample_from_seed",
                    {"seed": spec([2], tf.int32, "seed"),
                     "num_samples": spec([], tf.int32, "num_samples"),
                     "temperature": temperature},
                    {"images": images("images", batch=None)}),
      SignatureSpec("switch", {"global_images": images("global_images"),
                               "local_images": images("local_images")},
                    output_images),
      SignatureSpec("interpolate",
                    {"images_start": images("images_start"),
                     "images_end": images("images_end"),
                     "z_fractions": spec([None], tf.float32, "z_fractions"),
                     "v_fractions": spec([None], tf.float32, "v_fractions")},
                    {"images": spec([n, None, None, height, width, channels],
                                    tf.uint8, "images")}),
  ]
  return {s.name: s for s in specs}


class ServingFunctions:
  """The signatures' Python functions over one model (see module docstring).

  Args:
    model: a `GLVAE` with its 1x1-conv inverse cache enabled.
    batch_size: fixes N (TF Lite); None leaves it free (SavedModel).
    check_inputs: add the in-graph input checks (TF Lite omits them: its
      interpreter enforces static shapes, and Assert is not a builtin op).
  """

  def __init__(self, model, batch_size: Optional[int] = None,
               check_inputs: bool = True):
    self._model = model
    self._check_inputs = check_inputs
    self.specs = signature_specs(model.config, batch_size)

  def function(self, name: str) -> Callable:
    if name not in self.specs:
      raise ValueError(f"Unknown signature {name!r}; allowed: "
                       f"{', '.join(SIGNATURE_NAMES)}.")
    return getattr(self, name)

  # ------------------------------------------------------------ checks
  def _checked(self, signature: str, **tensors) -> List[tf.Tensor]:
    """Asserts each input matches its spec; returns them in given order."""
    if not self._check_inputs:
      return list(tensors.values())
    checked = []
    for name, tensor in tensors.items():
      expected = self.specs[signature].inputs[name]
      rank = len(expected.shape)
      shape = tf.shape(tensor)
      sizes = [-1 if d is None else d for d in expected.shape]
      # Pad or trim the actual shape to the expected rank so the element-wise
      # comparison is defined; the rank test then decides.
      padded = tf.concat([shape, tf.fill([rank], -2)], axis=0)[:rank]
      matches = tf.logical_or(tf.equal(sizes, -1), tf.equal(padded, sizes))
      ok = tf.logical_and(tf.equal(tf.size(shape), rank),
                          tf.reduce_all(matches))
      # No quotes: Assert prints its strings C-escaped.
      described = self.specs[signature].describe_input(name)
      message = f"{signature}: input {name} must be {described}; got shape"
      with tf.control_dependencies([tf.debugging.Assert(ok, [message,
                                                             shape])]):
        # Grappler folds what the traced signature fixes (the rank; the whole
        # shape of seed, temperature, num_samples) into constants, so the
        # Assert misses those; EnsureShape is kept, and names the input.
        # The checks below reduce over the traced rank, so they come after.
        tensor = tf.ensure_shape(tensor, expected.shape)
      checks = []
      free = [i for i, d in enumerate(expected.shape) if d is None]
      if free:
        # An empty batch would reach convolutions that mis-shape it.
        checks.append(tf.debugging.Assert(
            tf.reduce_all(tf.gather(tf.shape(tensor), free) >= 1),
            [f"{signature}: input {name} must not be empty (every free size "
             f"of {described} >= 1); got shape", shape]))
      if expected.dtype.is_floating:
        # NaN or inf would decode to arbitrary pixels.
        checks.append(tf.debugging.Assert(
            tf.reduce_all(tf.math.is_finite(tensor)),
            [f"{signature}: input {name} must be finite; it holds NaN or "
             f"inf"]))
        checks += self._bounded(signature, name, tensor)
      with tf.control_dependencies(checks):
        checked.append(tf.identity(tensor))
    return checked

  def _at_most_generated(self, signature: str, what: str, count):
    if not self._check_inputs:
      return []
    return [tf.debugging.Assert(
        count <= MAX_GENERATED_IMAGES,
        [f"{signature}: {what} must be at most {MAX_GENERATED_IMAGES} images "
         f"per request; got", count])]

  def _same_batch(self, signature: str, first, second, names):
    if not self._check_inputs:
      return []
    batches = tf.stack([tf.shape(first)[0], tf.shape(second)[0]])
    return [tf.debugging.Assert(
        tf.equal(batches[0], batches[1]),
        [f"{signature}: inputs {names[0]} and {names[1]} must have the "
         f"same batch size N; got", batches])]

  def _bounded(self, signature: str, name: str, tensor) -> List[tf.Tensor]:
    """Float inputs within the range where the math holds (`latents`)."""
    if name in ("z", "v", "z_noise", "v_noise"):
      low, high = -latents.MAX_LATENT_ABS, latents.MAX_LATENT_ABS
    elif name in ("z_fractions", "v_fractions"):
      low, high = latents.FRACTION_RANGE
    elif name == "temperature":  # > 0 is checked with num_samples' >= 1.
      low, high = -math.inf, latents.MAX_TEMPERATURE
    else:
      return []
    text = (f"[{low:g}, {high:g}]" if low > -math.inf else
            f"(0, {high:g}]")
    inside = tf.logical_and(tf.reduce_min(tensor) >= low,
                            tf.reduce_max(tensor) <= high)
    return [tf.debugging.Assert(
        inside, [f"{signature}: input {name} must lie in {text}; got values "
                 f"from", tf.reduce_min(tensor), "to",
                 tf.reduce_max(tensor)])]

  def _positive(self, signature: str, name: str, value, minimum_text: str):
    if not self._check_inputs:
      return []
    condition = (value > 0.0 if value.dtype.is_floating else value >= 1)
    return [tf.debugging.Assert(
        condition, [f"{signature}: {name} must be {minimum_text}; got", value])]

  # --------------------------------------------------------- functions
  # Each is the GLVAE method of the same name behind the input checks.
  def encode(self, images):
    (images,) = self._checked("encode", images=images)
    z, z_log_variance, v = self._model.encode(images)
    return {"z": z, "z_scale": tf.exp(0.5 * z_log_variance), "v": v}

  def decode(self, z, v):
    z, v = self._checked("decode", z=z, v=v)
    with tf.control_dependencies(self._same_batch("decode", z, v, ("z", "v"))):
      return {"images": self._model.decode(z, v)}

  def sample(self, z_noise, v_noise, temperature):
    z_noise, v_noise, temperature = self._checked(
        "sample", z_noise=z_noise, v_noise=v_noise, temperature=temperature)
    checks = (self._same_batch("sample", z_noise, v_noise,
                               ("z_noise", "v_noise")) +
              self._positive("sample", "temperature", temperature, "> 0"))
    with tf.control_dependencies(checks):
      z, v = self._model.latents_from_noise(z_noise, v_noise, temperature)
      return {"images": self._model.decode(z, v)}

  def sample_from_seed(self, seed, num_samples, temperature):
    seed, num_samples, temperature = self._checked(
        "sample_from_seed", seed=seed, num_samples=num_samples,
        temperature=temperature)
    checks = (self._positive("sample_from_seed", "num_samples", num_samples,
                             ">= 1") +
              self._at_most_generated("sample_from_seed", "num_samples",
                                      num_samples) +
              # Worded as when this signature ran `sample` on its noise.
              self._positive("sample", "temperature", temperature, "> 0"))
    with tf.control_dependencies(checks):
      return {"images": self._model.sample(num_samples, temperature, seed)}

  def switch(self, global_images, local_images):
    global_images, local_images = self._checked(
        "switch", global_images=global_images, local_images=local_images)
    with tf.control_dependencies(self._same_batch(
        "switch", global_images, local_images,
        ("global_images", "local_images"))):
      return {"images": self._model.switch(global_images, local_images)}

  def interpolate(self, images_start, images_end, z_fractions, v_fractions):
    images_start, images_end, z_fractions, v_fractions = self._checked(
        "interpolate", images_start=images_start, images_end=images_end,
        z_fractions=z_fractions, v_fractions=v_fractions)
    count = (tf.cast(tf.shape(images_start)[0], tf.int64) *
             tf.cast(tf.shape(z_fractions)[0], tf.int64) *
             tf.cast(tf.shape(v_fractions)[0], tf.int64))
    with tf.control_dependencies(self._same_batch(
        "interpolate", images_start, images_end,
        ("images_start", "images_end")) + self._at_most_generated(
            "interpolate", "the output N x A x B", count)):
      return {"images": self._model.interpolate(images_start, images_end,
                                                z_fractions, v_fractions)}
