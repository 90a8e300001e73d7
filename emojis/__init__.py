"""Emoji pictures drawn over faces, and the script that renders them (``python -m emojis.make_emojis``)."""
