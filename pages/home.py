"""Home page: what Emojify does, the emotions it knows, and the model the pages use, whichever it is.

The active model may be a run trained here: it is described too (a run's card has its validation
accuracy, not the shipped model's test evaluation), with a warning when it is weak.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app.emotions import CLASS_NAMES
from app.model_summary import summarize
from app.runs import active_model_path
from pages.shared import emoji_image

st.title("Emojify")
st.markdown(
    "Emojify reads the facial expression of every face in a photo or a webcam stream and shows "
    "the matching emoji. Behind it: OpenCV's Haar face detector and a Keras convolutional network "
    "trained on **FER2013**'s 35,887 48×48 face pictures, with ten FER+ annotators' votes on 35,712."
)
PAGES = Path(__file__).parent
for page, label, icon, what in (
    ("photo.py", "Try it on a photo", ":material/photo_camera:", "upload one or take one with your camera"),
    ("live.py", "Live webcam", ":material/videocam:", "emojis over your face in real time"),
    ("video.py", "Video", ":material/movie:", "an emotion timeline and an emojified copy of a video"),
    ("training.py", "Training", ":material/model_training:", "train your own model and watch it learn"),
    ("analysis.py", "Analysis", ":material/analytics:", "per-emotion scores, confusion matrix, mistakes"),
):
    link, description = st.columns([1, 3], vertical_alignment="center")
    with link:
        st.page_link(PAGES / page, label=label, icon=icon)
    description.caption(what)

st.subheader("Seven emotions")
for column, name in zip(st.columns(len(CLASS_NAMES)), CLASS_NAMES, strict=True):
    with column:  # the pictures the overlay draws: emoji fonts differ, and some systems have none
        emoji_image(name, width=56)
        st.caption(name)

st.subheader("How it works")
st.markdown(
    "1. **Detect** faces with a Haar cascade on a grayscale copy of the picture.\n"
    "2. **Frame** each face like FER2013 does (a square a little wider than the face) and shrink "
    "it to 48×48 gray pixels.\n"
    "3. **Classify** all faces in one batch with the CNN: seven probabilities per face.\n"
    "4. **Draw** the most likely emotion's emoji over each face."
)

model = summarize(active_model_path())
st.subheader("The model")
st.markdown(f"The Photo, Live and Video pages use **{model.title}** unless you pick another there.")
st.caption(model.caption)
if model.metrics:
    for column, (label, value, help_text) in zip(st.columns(len(model.metrics)), model.metrics, strict=True):
        column.metric(label, value, help=help_text)
if model.warning:
    st.warning(model.warning + " Choose another on the Training page.")
