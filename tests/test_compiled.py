"""Compiled inference: the same results as eager, one trace per operation.

An operation runs eagerly on its first call and compiled from its second,
so every check below calls it twice.
"""

import numpy as np
import pytest
import tensorflow as tf

import flow_checks
import tfglv
from tfglv import compiled


def _images(model, n, seed=0):
  rng = np.random.RandomState(seed)
  return tf.constant(rng.randint(0, 256, (n, *model.config.image_shape)),
                     tf.uint8)


@pytest.fixture(scope="module", params=tfglv.configs.MODEL_VARIANTS)
def model(request):
  built = tfglv.build_model(tfglv.configs.get("tiny", model=request.param))
  built.initialize(_images(built, 16, seed=9))
  # Off the identity init, so that every layer changes the outputs.
  flow_checks.perturb(built.trainable_variables, stddev=0.03)
  return built


def _eager(model, method, *args, **kwargs):
  model.run_eagerly = True
  try:
    return getattr(model, method)(*args, **kwargs)
  finally:
    model.run_eagerly = False


def _assert_identical(compiled_result, eager_result):
  compiled_leaves = tf.nest.flatten(compiled_result)
  eager_leaves = tf.nest.flatten(eager_result)
  assert len(compiled_leaves) == len(eager_leaves)
  for got, expected in zip(compiled_leaves, eager_leaves):
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got.numpy(), expected.numpy())


def _calls(model):
  """(method, args, kwargs) of every compiled operation."""
  images = _images(model, 5)
  other = _images(model, 5, seed=1)
  z, _, v = _eager(model, "encode", other)
  z_noise, v_noise = tfglv.latents.draw_noise(4, 3, model.latent_dim,
                                              model.config.image_shape)
  return [
      ("encode", (images,), {}),
      ("posterior", (images,), {"training": False}),
      ("decode", (z, v), {}),
      ("latents_from_noise", (z_noise, v_noise, 0.8), {}),
      ("sample_latents", (3,), {"temperature": 0.7, "seed": 4}),
      ("sample", (3,), {"temperature": 0.7, "seed": [1, 2]}),
      ("switch", (images, other), {}),
      ("interpolate", (images[:2], other[:2], [0.0, 0.5, 1.0], [0.0, 1.0]),
       {}),
      ("compute_losses", (images, 3), {"num_samples": 2}),
      ("compute_losses", (images, 3), {"training": True}),
      ("bits_per_dim", (images,), {"num_samples": 2, "seed": 1}),
      ("importance_weighted_bits_per_dim", (images,), {"num_samples": 3}),
  ]


def test_compiled_operations_equal_eager_bit_for_bit(model):
  calls = _calls(model)
  if model.variant != "glvae":  # The variants differ in encode and decode.
    calls = [c for c in calls if c[0] in ("encode", "decode", "sample")]
  for method, args, kwargs in calls:
    eager = _eager(model, method, *args, **kwargs)
    _assert_identical(getattr(model, method)(*args, **kwargs), eager)
    _assert_identical(getattr(model, method)(*args, **kwargs), eager)
    assert compiled.tracing_count(model, method) >= 1, method


def test_with_the_inference_cache_too(model):
  images = _images(model, 4, seed=2)
  model.set_inference_cache(True)
  try:
    for _ in range(2):
      encoding = model.encode(images)
      _assert_identical(encoding, _eager(model, "encode", images))
      _assert_identical(model.decode(encoding.z, encoding.v),
                        _eager(model, "decode", encoding.z, encoding.v))
    np.testing.assert_array_equal(model.decode(encoding.z, encoding.v),
                                  images)
  finally:
    model.set_inference_cache(False)


def test_the_second_call_traces_once_for_every_batch_size():
  model = tfglv.build_model(tfglv.configs.get("tiny"))
  model.initialize(_images(model, 8))
  model.encode(_images(model, 2))
  assert compiled.tracing_count(model, "encode") == 0  # Ran op by op.
  for n in (1, 3, 16, 5):
    z, _, v = model.encode(_images(model, n))
    model.decode(z, v)
    model.sample(n, temperature=0.5 + 0.1 * n, seed=n)
    model.compute_losses(_images(model, n), seed=n)
  for method in ("encode", "decode", "sample", "compute_losses"):
    assert compiled.tracing_count(model, method) == 1, method
  # Arguments that shape the graph trace once per value.
  for _ in range(3):
    model.compute_losses(_images(model, 2), seed=0, num_samples=2)
  assert compiled.tracing_count(model, "compute_losses") == 2


_BAD_CALLS = [
    ("encode", (np.zeros((0, 16, 16, 3), np.uint8),)),
    ("encode", (np.zeros((2, 16, 16, 3), np.float32),)),
    ("encode", (np.zeros((2, 8, 8, 3), np.uint8),)),
    ("decode", (np.zeros((1, 8), np.float32),
                np.full((1, 16, 16, 3), np.nan, np.float32))),
    ("decode", (np.full((1, 8), 1e30, np.float32),
                np.zeros((1, 16, 16, 3), np.float32))),
    ("decode", (np.zeros((1, 5), np.float32),
                np.zeros((1, 16, 16, 3), np.float32))),
    ("sample", (2, 0.0)),
    ("sample", (2, 1e6)),
    ("sample", (0,)),
    ("sample", (2, 1.0, [1, 2, 3])),
    ("latents_from_noise", (np.zeros((1, 8), np.float32),
                            np.zeros((1, 16, 16, 3), np.float32), -1.0)),
    ("interpolate", (np.zeros((1, 16, 16, 3), np.uint8),
                     np.zeros((1, 16, 16, 3), np.uint8), [0.0, 50.0], [0.0])),
    ("compute_losses", (np.zeros((2, 16, 16, 3), np.uint8), 0, False, 0)),
]


@pytest.fixture(scope="module")
def tiny_model():
  return tfglv.build_model(tfglv.configs.get("tiny"))


@pytest.mark.parametrize("method,args", _BAD_CALLS)
def test_bad_arguments_raise_the_eager_paths_errors(tiny_model, method, args):
  model = tiny_model
  with pytest.raises(ValueError) as eager:
    _eager(model, method, *args)
  with pytest.raises(ValueError) as compiled_error:
    getattr(model, method)(*args)
  assert str(compiled_error.value) == str(eager.value)
  assert compiled.tracing_count(model, method) == 0


def test_inside_a_tf_function_the_method_runs_as_written():
  model = tfglv.build_model(tfglv.configs.get("tiny"))
  images = _images(model, 2)
  traced = tf.function(lambda x: model.encode(x).v)
  # The caller's graph keeps Grappler's rewrites: equal up to rounding.
  for _ in range(2):
    np.testing.assert_allclose(traced(images), model.encode(images).v,
                               rtol=1e-5, atol=1e-6)
  assert compiled.tracing_count(model, "encode") == 1  # Only the eager call.
