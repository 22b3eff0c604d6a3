"""Entry points (absl flags only; the logic is in tfglv).

Importing tfglv first imports TensorFlow without its start-up banner
(`tfglv._tf_import`), before any entry point imports TensorFlow itself.
"""

import tfglv  # pylint: disable=unused-import
