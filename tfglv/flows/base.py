"""Shared machinery of tfglv's flow bijectors.

Every flow piece is a pair:
  * a Keras layer that owns the variables (Keras 3 variables are not
    `tf.Variable`s, so a `tf.Module` cannot track them), and
  * a TFP bijector, built from that layer on demand (`layer.bijector`),
    that does the invertible math and the log-determinants.

Direction. Bijector `forward` maps data to latent, `x -> v = f(x; z)`: the
direction the paper trains (DESIGN section 4). The generative direction is
`inverse`; wrap with `tfb.Invert` to use a flow inside a
`tfd.TransformedDistribution`.

Conditioning. Conditional pieces take the global code as the keyword `z`
(`bijector.forward(x, z=z)`); it is passed on every call, never captured.

One pass. TFP computes `forward` and `forward_log_det_jacobian` in separate
calls, which would run every coupling network twice. `FlowBijector` adds
`forward_and_log_det` / `inverse_and_log_det` that return both from one pass;
the TFP methods are thin views of them, and training uses the one-pass form.

Options, not modes. A layer's bijector is made by
`layer.make_bijector(initializing=False, cached=False)`; `layer.bijector` is
the plain (training) one. `initializing=True` makes a bijector whose forward
pass first sets the data-dependent parameters (ActNorm) from its input: the
model's one initialisation pass. `cached=True` makes one that reads the
inference caches stored by `refresh_cache()` (W^-1 and log|det W| of the 1x1
convolutions, the weight-normalised kernels) instead of recomputing them: how
decoding and exports avoid matrix inversion. Composite layers pass both
options to every piece, so one call decides what a whole flow computes.
"""

from typing import Optional, Sequence, Tuple

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfglv.layers import arguments

tfb = tfp.bijectors


class FlowBijector(tfb.Bijector):
  """A bijector that computes its output and log-det in one pass.

  Subclasses implement `forward_and_log_det(x, **condition)` and
  `inverse_and_log_det(y, **condition)`, each returning `(output, log_det)`
  with `log_det` reduced over the event dimensions (shape `[batch]`).
  """

  #: Whether this bijector uses the keyword `z`.
  conditional = False

  def forward_and_log_det(self, x, **condition) -> Tuple[tf.Tensor, tf.Tensor]:
    raise NotImplementedError

  def inverse_and_log_det(self, y, **condition) -> Tuple[tf.Tensor, tf.Tensor]:
    raise NotImplementedError

  # TFP's protocol, as views of the one-pass methods.
  def _forward(self, x, **condition):
    return self.forward_and_log_det(x, **condition)[0]

  def _inverse(self, y, **condition):
    return self.inverse_and_log_det(y, **condition)[0]

  def _forward_log_det_jacobian(self, x, **condition):
    return self.forward_and_log_det(x, **condition)[1]

  def _inverse_log_det_jacobian(self, y, **condition):
    return self.inverse_and_log_det(y, **condition)[1]


class LayerBijector(FlowBijector):
  """The bijector of one `FlowLayer`: the layer holds the variables, the
  bijector does the math on them, over the layer's `event_rank`.

  Subclasses pass `dict(locals())` of their own constructor as
  `parameters` (TFP's record of how to rebuild the bijector).
  """

  def __init__(self, layer, parameters, validate_args: bool = False,
               name: Optional[str] = None):
    self._layer = layer
    super().__init__(forward_min_event_ndims=layer.event_rank,
                     validate_args=validate_args, parameters=parameters,
                     name=name)


class FlowLayer(arguments.KeepsArguments, keras.layers.Layer):
  """A Keras layer that owns a flow piece's variables and makes its bijector.

  Subclasses implement `make_bijector`; see the module docstring for the
  options.
  """

  def make_bijector(self, *, initializing: bool = False,
                    cached: bool = False) -> FlowBijector:
    raise NotImplementedError

  @property
  def bijector(self) -> FlowBijector:
    """The training bijector: no initialisation, no inference cache."""
    return self.make_bijector()


def check_event_rank(event_rank: int) -> None:
  if event_rank not in (1, 3):
    raise ValueError(f"event_rank must be 1 (vectors) or 3 (images, NHWC); "
                     f"got {event_rank}.")


def split_channels(x: tf.Tensor, first: int) -> Tuple[tf.Tensor, tf.Tensor]:
  """(x[..., :first], x[..., first:]) as one `tf.split`.

  Same values as two slices, but the gradient is one concat: a slice's
  gradient (`StridedSliceGrad`) writes a zero-padded full-size tensor per
  slice and adds them, which cost ~8% of a small training step.
  """
  total = x.shape[-1]
  if total is None:
    raise ValueError("split_channels needs a static channel count.")
  if not 0 <= first <= total:
    raise ValueError(f"first must be in [0, {total}]; got {first}.")
  return tuple(tf.split(x, [first, total - first], axis=-1))


def mix_channels(x: tf.Tensor, matrix: tf.Tensor) -> tf.Tensor:
  """`x @ matrix` over the last axis: [..., C] x [C, D] -> [..., D], as one
  matmul over the flattened leading axes (a 1x1 convolution of NHWC x)."""
  shape = tf.shape(x)
  flat = tf.matmul(tf.reshape(x, [-1, shape[-1]]), matrix)
  return tf.reshape(flat, tf.concat([shape[:-1], [matrix.shape[-1]]], 0))


def batch_zeros(x: tf.Tensor) -> tf.Tensor:
  """A `[batch]` vector of zeros in `x`'s dtype."""
  return tf.zeros(tf.shape(x)[:1], dtype=x.dtype)


def event_size_2d(x: tf.Tensor) -> tf.Tensor:
  """Number of spatial positions H*W of an NHWC tensor, in x's dtype."""
  shape = tf.shape(x)
  return tf.cast(shape[1] * shape[2], x.dtype)


def per_position_log_det(log_det: tf.Tensor, x: tf.Tensor,
                         event_rank: int) -> tf.Tensor:
  """A log-det that is the same at every position -> `[batch]`.

  For images (event rank 3) it is multiplied by the H*W positions of `x`.
  """
  if event_rank == 3:
    log_det = log_det * event_size_2d(x)
  return log_det + batch_zeros(x)


class FlowChain(FlowBijector):
  """Applies bijectors in order in the forward (data -> latent) direction.

  Unlike `tfb.Chain`, the list is in application order, the condition `z`
  reaches every conditional member, and the log-det is accumulated from the
  one-pass methods.
  """

  def __init__(self, bijectors: Sequence[FlowBijector],
               forward_min_event_ndims: int = 3, validate_args: bool = False,
               name: str = "flow_chain"):
    parameters = dict(locals())
    if not bijectors:
      raise ValueError("FlowChain needs at least one bijector.")
    self._bijectors = list(bijectors)
    self.conditional = any(b.conditional for b in self._bijectors)
    super().__init__(forward_min_event_ndims=forward_min_event_ndims,
                     validate_args=validate_args, parameters=parameters,
                     name=name)

  @property
  def bijectors(self):
    return list(self._bijectors)

  @staticmethod
  def _condition_for(bijector, condition):
    return condition if bijector.conditional else {}

  def forward_and_log_det(self, x, **condition):
    log_det = None
    for bijector in self._bijectors:
      x, ldj = bijector.forward_and_log_det(
          x, **self._condition_for(bijector, condition))
      log_det = ldj if log_det is None else log_det + ldj
    return x, log_det

  def inverse_and_log_det(self, y, **condition):
    log_det = None
    for bijector in reversed(self._bijectors):
      y, ldj = bijector.inverse_and_log_det(
          y, **self._condition_for(bijector, condition))
      log_det = ldj if log_det is None else log_det + ldj
    return y, log_det


class OnTrailingChannels(FlowBijector):
  """Applies `bijector` to channels `[start:]`; channels `[:start]` pass."""

  def __init__(self, bijector: FlowBijector, start: int,
               validate_args: bool = False, name: Optional[str] = None):
    parameters = dict(locals())
    if start < 0:
      raise ValueError(f"start must be >= 0; got {start}.")
    self._bijector = bijector
    self._start = start
    self.conditional = bijector.conditional
    super().__init__(
        forward_min_event_ndims=bijector.forward_min_event_ndims,
        validate_args=validate_args, parameters=parameters,
        name=name or "on_trailing_channels")

  def forward_and_log_det(self, x, **condition):
    kept, moved = split_channels(x, self._start)
    moved, log_det = self._bijector.forward_and_log_det(moved, **condition)
    return tf.concat([kept, moved], axis=-1), log_det

  def inverse_and_log_det(self, y, **condition):
    kept, moved = split_channels(y, self._start)
    moved, log_det = self._bijector.inverse_and_log_det(moved, **condition)
    return tf.concat([kept, moved], axis=-1), log_det
