"""Photo page: upload a photo or take one with the camera, get an emoji over every face.

The photo is processed in memory only and never stored on the server.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from app.calibration import calibrate_largest
from app.detection import DetectorSettings
from app.explain import GradCam
from app.framing import crop_faces
from app.images import PHOTO_EXTENSIONS, ImageError, encode_image, format_names, read_image, to_gray
from app.overlay import reading_order
from app.pipeline import Face, OverlayOptions, Pipeline
from pages.calibration_ui import reference_photo_ui
from pages.charts import probability_chart
from pages.explanation import HELP, TOGGLE_LABEL, grad_cam, heatmap_ui
from pages.shared import (
    detector_settings_ui,
    emoji_image,
    load_pipeline,
    model_picker_ui,
    model_version,
    overlay_options_ui,
)

NO_FACE_TIPS = """
**No face found.** The detector looks for upright faces seen from the front. Try:
- a photo where the face is well lit and not turned more than ~30° away;
- a smaller **Smallest face** or a lower **Strictness** in the sidebar under *Face detection*;
- cropping the photo closer to the face.
"""


def photo_input_ui() -> tuple[str, bytes] | None:
    """An uploaded file or a camera snapshot, as (name, bytes)."""
    upload_tab, camera_tab = st.tabs(
        [":material/upload: Upload a photo", ":material/photo_camera: Take a photo"]
    )
    with upload_tab:
        upload = st.file_uploader(
            "Photo with one or more faces",
            type=list(PHOTO_EXTENSIONS),
            key="photo_upload",
            help=f"{format_names()}. Phone photos are turned upright from their EXIF tag.",
        )
    with camera_tab:
        snapshot = st.camera_input("Smile (or frown) at your camera", key="photo_camera")
    chosen = upload or snapshot
    return (chosen.name, chosen.getvalue()) if chosen else None


@st.cache_data(max_entries=8, show_spinner="Finding faces…")
def analyze(data: bytes, settings: DetectorSettings, model_key: str, _pipeline: Pipeline) -> tuple:
    """Decode and analyse once per photo, settings and model; redraws with other toggles are free.

    Faces come in reading order, so the numbers drawn on the photo run like the cards below it.
    """
    rgb = read_image(data)
    return rgb, reading_order(_pipeline.analyze(rgb, settings))


def face_card(index: int, face: Face, crop: np.ndarray, explainer: GradCam | str) -> None:
    """One face's verdict: emoji, emotion, confidence, what the model saw, all probabilities."""
    with st.container(border=True):
        left, right = st.columns([1, 2])
        with left:
            emoji_image(face.emotion, width=64)
        left.markdown(f"**Face {index}: {face.emotion}**  \n{face.confidence:.0%} confident")
        left.image(crop.astype(np.uint8), caption="what the model sees (48×48)", width=96, clamp=True)
        right.altair_chart(probability_chart(face.probabilities), width="stretch")
        if st.toggle(TOGGLE_LABEL, key=f"gradcam_{index}", help=HELP):
            heatmap_ui(f"gradcam_class_{index}", crop, face.probabilities, explainer)


def download_ui(name: str, annotated: np.ndarray) -> None:
    """The annotated photo as a PNG download, offered above the photo so it is in view with it."""
    stem = Path(name).stem or "photo"
    st.download_button(
        "Download the emojified photo",
        encode_image(annotated, "png"),
        file_name=f"{stem}_emojify.png",
        mime="image/png",
        key="download",
        icon=":material/download:",
    )


def show_result(
    name: str, rgb: np.ndarray, faces: list[Face], pipeline: Pipeline, options: OverlayOptions, model_key: str
) -> None:
    """The photo with its emojis beside one card per face; without a face, what to try instead."""
    if not faces:
        image_col, tips_col = st.columns([3, 2])
        image_col.image(rgb, width="stretch")
        tips_col.info(NO_FACE_TIPS)  # nothing was drawn: no download of the unchanged photo
        return
    annotated = pipeline.annotate(rgb, faces, options)
    image_col, faces_col = st.columns([3, 2])
    with image_col:
        download_ui(name, annotated)
        st.image(annotated, width="stretch")
    with faces_col:
        st.subheader(f"{len(faces)} face{'s' if len(faces) > 1 else ''}")
        crops = crop_faces(to_gray(rgb), [face.box for face in faces])
        explainer = grad_cam(model_key, pipeline.classifier.model)
        for index, (face, crop) in enumerate(zip(faces, crops, strict=True), start=1):
            face_card(index, face, crop[:, :, 0], explainer)


st.title("Photo")
st.caption(
    "Upload a photo or take one: Emojify puts an emoji over every face it finds. "
    "Your photo is processed in memory and never stored."
)
settings = detector_settings_ui()
options = overlay_options_ui()
model_path = model_picker_ui(key="photo_model")
photo = photo_input_ui()
# After the uploader: it is on screen while the model may still be loading (first visit).
pipeline = load_pipeline(model_path)
if pipeline is not None and photo is not None:
    name, data = photo
    model_key = model_version(model_path)
    calibration = reference_photo_ui(pipeline, settings, model_key)
    try:
        rgb, faces = analyze(data, settings, model_key, pipeline)
    except ImageError as err:
        st.error(f"**{name}**: {err}.")
    else:
        show_result(name, rgb, calibrate_largest(faces, calibration), pipeline, options, model_key)
