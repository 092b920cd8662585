"""StarGAN (Choi et al., CVPR 2018) in TensorFlow 2 / Keras 3: train, export and serve."""

__version__ = "0.1.0"
