"""Emojify's Streamlit pages: thin layers of widgets over the ``app`` core."""
