"""Measurements that back the numbers quoted in docstrings and the README (``python -m benchmarks.…``)."""

from app.keras_env import quiet_tensorflow

# This package's modules import Keras before anything of app/, whose __init__ would quiet it too late.
quiet_tensorflow()
