"""tfdet: one-stage object detection in TensorFlow, with a production TFX pipeline.

Importing tfdet selects Keras 2 (tf_keras) for TensorFlow's Keras, which the
SavedModel export, tensorflow-transform and TFMA all need; set
``TF_USE_LEGACY_KERAS`` yourself before importing TensorFlow to override.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

__version__ = "0.1.0"
