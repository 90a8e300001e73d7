"""Emojify's framework-free core: decode a photo, find faces, classify them, draw emojis.

Nothing in this package imports Streamlit, so the CLI, the pages and the tests share one code path.
"""
