"""tfglv: Decoupling Global and Local Representations via Invertible
Generative Flows (Ma et al., ICLR 2021) in TensorFlow, TFP and Keras 3.

    import tfglv
    config = tfglv.configs.get("cifar10", variant="glvae")
    model = tfglv.build_model(config.model)
"""

import warnings as _warnings

# TFP's import raises a DeprecationWarning on this stack; it is not ours.
_warnings.filterwarnings("ignore", category=DeprecationWarning,
                         module=r"tensorflow_probability.*")

from tfglv import _tf_import  # pylint: disable=g-import-not-at-top
_tf_import.import_tensorflow()  # Before anything imports TF: no banner.

from tfglv import configs  # pylint: disable=g-import-not-at-top
from tfglv import flows
from tfglv.model import Encoding, GLVAE, build_model

__all__ = ["configs", "flows", "GLVAE", "build_model"]
__version__ = "0.3.0"
