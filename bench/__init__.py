"""Benchmarks (scripts that print tables); see bench/README or each module.

Importing tfglv first imports TensorFlow without its start-up banner.
"""

import tfglv  # pylint: disable=unused-import
