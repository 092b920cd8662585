"""StarGAN (Choi et al., CVPR 2018) in TensorFlow 2 / Keras 3: train, export and serve.

`stargan_tf.StarGAN` (a keras.Model for compile/fit) and its callbacks load on first use, so that importing the
package stays free of TensorFlow."""

import importlib

__version__ = "0.1.0"

_LAZY = {"StarGAN": "stargan_tf.stargan", "StarGANCheckpoint": "stargan_tf.callbacks",
         "SampleGrid": "stargan_tf.callbacks", "Evaluate": "stargan_tf.callbacks",
         "ProgressLog": "stargan_tf.callbacks", "TrainingStreams": "stargan_tf.streams"}
__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'stargan_tf' has no attribute {name!r}")
