"""The "What did the model look at?" widgets, shared by the Photo page and the Analysis page.

Both show a face crop under its heatmap (:mod:`app.explain`) for the predicted emotion or any
other one the user picks, so a student can compare what argued for the model's verdict with what
would have argued for the right answer. Not a page: ``app/streamlit_app.py`` lists the pages.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import streamlit as st

from app.emotions import CLASS_NAMES, EMOJI
from app.explain import ExplainError, GradCam, heatmap_image

TOGGLE_LABEL = "What did the model look at?"
HELP = (
    "Grad-CAM (its HiResCAM form): the parts of the face whose features raised the model's score for "
    "the chosen emotion. Warm colours mattered most; the map is coarse because the last convolution "
    "layer sees only a small grid of places (8×8 for the shipped model)."
)


@st.cache_resource(max_entries=4, show_spinner=False)
def grad_cam(model_key: Hashable, _model: Any) -> GradCam | str:
    """One Grad-CAM per model file version, or why the model can't be explained."""
    try:
        return GradCam(_model)
    except ExplainError as err:
        return str(err)


def heatmap_ui(
    key: str,
    crop: np.ndarray,
    probabilities: Sequence[float],
    explainer: GradCam | str,
    true: str | None = None,
) -> None:
    """A picker of the emotion to explain (the prediction first) and the crop under its heatmap.

    ``true``, when known (a labelled test image), is marked in the picker.
    """
    if isinstance(explainer, str):
        st.info(f"This model can't be explained with Grad-CAM: {explainer}.")
        return
    predicted = CLASS_NAMES[int(np.argmax(probabilities))]

    def label(name: str) -> str:
        what = ["the prediction"] * (name == predicted) + ["the true class"] * (name == true)
        return f"{EMOJI[name]} {name}" + (f" ({', '.join(what)})" if what else "")

    emotion = st.selectbox(
        "Emotion to explain",
        [predicted, *(name for name in CLASS_NAMES if name != predicted)],
        key=key,
        format_func=label,
    )
    picture, words = st.columns([1, 1])
    picture.image(heatmap_image(explainer, crop, CLASS_NAMES.index(emotion)), caption=f"Grad-CAM: {emotion}")
    words.caption(
        f"Warm colours: where the face's features argued for **{emotion}** "
        f"({probabilities[CLASS_NAMES.index(emotion)]:.0%}) rather than the other emotions. "
        "Pick another emotion to see what would have argued for it."
    )
