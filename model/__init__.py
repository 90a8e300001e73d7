"""Model definitions: the architecture registry lives in ``model.architectures``."""

from app.keras_env import quiet_tensorflow

# This package's modules import Keras before anything of app/, whose __init__ would quiet it too late.
quiet_tensorflow()
