"""The representation operations over numpy batches: each is the GLVAE
method of the same name, run in batches."""

import numpy as np
import pytest
import tensorflow as tf

import flow_checks
import tfglv
from tfglv.data import synthetic
from tfglv.evaluation import representations


def test_check_temperatures():
  assert representations.check_temperatures(["0.7", 1]) == (0.7, 1.0)
  for bad in ([0], [float("nan")], [float("inf")], ["warm"]):
    with pytest.raises(ValueError, match="temperatures must be"):
      representations.check_temperatures(bad)


@pytest.fixture(scope="module", params=tfglv.configs.MODEL_VARIANTS)
def model(request):
  config = tfglv.configs.get("tiny", model=request.param)
  model = tfglv.build_model(config)
  model.initialize(synthetic.generate(8, 16, 3, seed=0)["image"])
  flow_checks.perturb(model.trainable_variables, stddev=0.05)
  return model


def test_switch_is_the_model_switch_in_batches(model):
  images = synthetic.generate(10, 16, 3, seed=1)["image"]
  images_a, images_b = images[:5], images[5:]
  with_v_a, with_v_b = representations.switch(model, images_a, images_b,
                                              batch_size=2)
  for start in range(0, 5, 2):
    a = tf.constant(images_a[start:start + 2])
    b = tf.constant(images_b[start:start + 2])
    np.testing.assert_array_equal(with_v_a[start:start + 2],
                                  model.switch(b, a).numpy())
    np.testing.assert_array_equal(with_v_b[start:start + 2],
                                  model.switch(a, b).numpy())
  with pytest.raises(ValueError, match="same shape"):
    representations.switch(model, images_a, images[:4])


def test_interpolate_is_the_model_interpolation_of_one_pair(model):
  images = synthetic.generate(2, 16, 3, seed=2)["image"]
  alphas, betas = (0.0, 0.5, 1.0), (0.0, 0.3, 1.0)
  cells = representations.interpolate(model, images[0], images[1], alphas,
                                      betas)
  assert cells.shape == (3, 3, 16, 16, 3) and cells.dtype == np.uint8
  expected = model.interpolate(images[:1], images[1:], alphas, betas)[0]
  # Both images are encoded in one batch here, one each in the model's
  # method; float32 may round a pixel at a bin edge differently.
  assert np.abs(cells.astype(int) - expected.numpy()).max() <= 1
  np.testing.assert_array_equal(cells[0, 0], images[0])
  np.testing.assert_array_equal(cells[-1, -1], images[1])
  with pytest.raises(ValueError, match="single images"):
    representations.interpolate(model, images, images)


def test_samples_use_one_seed_per_batch(model):
  samples = representations.sample_in_batches(model, 5, temperature=0.8,
                                              seed=7, batch_size=2)
  assert samples.shape == (5, 16, 16, 3)
  np.testing.assert_array_equal(
      samples[2:4], model.sample(2, temperature=0.8, seed=[7, 1]).numpy())
  np.testing.assert_array_equal(
      samples[4:], model.sample(1, temperature=0.8, seed=[7, 2]).numpy())
