"""Emojify's framework-free core: decode a photo, find faces, classify them, draw emojis.

Nothing in this package imports Streamlit, so the CLI, the pages and the tests share one code path.
"""

from app.keras_env import quiet_tensorflow

# Before anything can import TensorFlow, whichever entry point (CLI, server, tests) runs.
quiet_tensorflow()
