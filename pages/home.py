"""Home page: what Emojify does, the emotions it knows, and how good the current model is."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app.emotions import CLASS_NAMES
from app.model_card import ModelCardError, read_card
from app.runs import active_model_path
from pages.shared import emoji_image

st.title("Emojify")
st.markdown(
    "Emojify reads the facial expression of every face in a photo or a webcam stream and shows "
    "the matching emoji. Behind it: OpenCV's Haar face detector and a Keras convolutional network "
    "trained on **FER2013**, 35,887 labelled 48×48 face pictures."
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

try:
    card = read_card(active_model_path())
except ModelCardError:
    card = None  # the pages that use the model say what is wrong with it
evaluation = (card or {}).get("evaluation", {})
if evaluation:
    st.subheader("The model")
    st.caption(f"Architecture `{card.get('architecture', '?')}` — accuracy on FER2013's held-out tests:")
    columns = st.columns(len(evaluation))
    for column, (split, result) in zip(columns, evaluation.items(), strict=True):
        column.metric(
            split.replace("_", " ").title(),
            f"{result['accuracy']:.1%}",
            help=f"macro-F1 {result['macro_f1']:.3f} on {result['n']:,} images",
        )
