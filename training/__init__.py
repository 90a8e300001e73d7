"""Offline training and evaluation of the emotion classifier (data loading, config, CLIs)."""

from app.keras_env import quiet_tensorflow

# This package's modules import Keras before anything of app/, whose __init__ would quiet it too late.
quiet_tensorflow()
