"""What every benchmark script does first: the repository on ``sys.path``, tf_keras for TensorFlow's Keras (as
tfdet needs), TensorFlow's start-up lines and google-api-core's Python-version warning kept off the console.

Each script starts with ``import _env`` (run as ``python benchmarks/NAME.py``, its folder is on the path).
"""

import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
warnings.filterwarnings("ignore", message=".*non-supported Python version.*")
