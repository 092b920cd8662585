"""Export a trained generator as a TF Serving SavedModel (not implemented yet)."""

import sys

if __name__ == "__main__":
    sys.exit("export.py: not implemented yet (the SavedModel export is tracked by its own issue)")
