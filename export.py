"""Export a trained StarGAN generator as a TF Serving SavedModel (`stargan-export` when installed; the code is
`stargan_tf.export`): `python export.py --model_save_dir DIR --export_dir OUT`."""

import sys

from stargan_tf.export import main

if __name__ == "__main__":
    sys.exit(main())
