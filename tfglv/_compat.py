"""Every use of a private TensorFlow or Keras API, in one place.

tfglv depends on a few internals that have no public equivalent. Each
function below wraps one of them, says why it is needed and which version
it was checked against, so that an upgrade has one file to read.

Checked against: TensorFlow 2.21.0, Keras 3.15.1, TFP 0.25.0.
"""
