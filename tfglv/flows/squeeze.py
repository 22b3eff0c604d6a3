"""Squeeze: 2x2 space-to-channel reshaping, log-det 0.

`[N, H, W, C] -> [N, H/2, W/2, 4C]` with output channel index
`(2 * dy + dx) * C + c`: the spatial offset first, then the input channel.
This is the order of the authors' code ([2, 2, C], DESIGN section 4), which
the coupling split masks depend on, and exactly `tf.nn.space_to_depth`.
"""

import tensorflow as tf

from tfglv.flows import base


class Squeeze(base.FlowBijector):
  """Space-to-depth by a factor of 2 (no variables)."""

  def __init__(self, validate_args: bool = False, name: str = "squeeze"):
    parameters = dict(locals())
    super().__init__(forward_min_event_ndims=3, is_constant_jacobian=True,
                     validate_args=validate_args, parameters=parameters,
                     name=name)

  def forward_and_log_det(self, x):
    return tf.nn.space_to_depth(x, 2), base.batch_zeros(x)

  def inverse_and_log_det(self, y):
    return tf.nn.depth_to_space(y, 2), base.batch_zeros(y)

  def _forward_event_shape(self, input_shape):
    h, w, c = input_shape[-3:]
    half = lambda d: None if d is None else d // 2
    return input_shape[:-3].concatenate([half(h), half(w),
                                         None if c is None else 4 * c])

  def _inverse_event_shape(self, output_shape):
    h, w, c = output_shape[-3:]
    double = lambda d: None if d is None else d * 2
    return output_shape[:-3].concatenate([double(h), double(w),
                                          None if c is None else c // 4])

  def _forward_event_shape_tensor(self, input_shape):
    return tf.concat([input_shape[:-3], input_shape[-3:-1] // 2,
                      input_shape[-1:] * 4], 0)

  def _inverse_event_shape_tensor(self, output_shape):
    return tf.concat([output_shape[:-3], output_shape[-3:-1] * 2,
                      output_shape[-1:] // 4], 0)
