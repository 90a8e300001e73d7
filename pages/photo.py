"""Photo page: upload a photo or take one with the camera, get an emoji over every face.

The photo is processed in memory only and never stored on the server.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import streamlit as st

from app.calibration import Calibration, calibrate_largest
from app.detection import Box, DetectorSettings
from app.explain import GradCam
from app.framing import crop_faces
from app.images import PHOTO_EXTENSIONS, ImageError, encode_image, format_names, read_image, to_gray
from app.overlay import reading_order
from app.pipeline import Face, OverlayOptions, Pipeline
from pages.calibration_ui import reference_photo_ui
from pages.explanation import HELP, TOGGLE_LABEL, grad_cam, heatmap_ui
from pages.shared import (
    detector_settings_ui,
    emoji_image,
    load_pipeline,
    model_picker_ui,
    model_ready_ui,
    model_version,
    overlay_options_ui,
)

#: A photo whose longer side is under this many pixels is shown enlarged (see display_scale)...
SMALL_PHOTO_SIDE = 320
#: ...but at most this many times: further, it is only bigger blocks of the same few pixels.
MAX_ENLARGE = 8
#: Session key: which input, "upload" or "snapshot", the user changed last (see photo_input_ui).
LATEST_SOURCE = "photo_latest_source"
NO_FACE_TIPS = """
**No face found.** The detector looks for upright faces seen from the front. Try:
- a photo where the face is well lit and not turned more than ~30° away;
- a smaller **Smallest face** or a lower **Strictness** in the sidebar under *Face detection*;
- cropping the photo closer to the face.
"""

NOTHING_DRAWN = "Nothing is drawn on the photo: turn on an overlay in the sidebar to download it emojified."


@dataclass(frozen=True)
class Photo:
    """A photo the user gave: ``file_id`` is new for every upload or snapshot, even of the same file."""

    file_id: str
    name: str
    data: bytes


def changed_last(source: str) -> None:
    """An input's on_change: its new photo (or its clearing) is the user's latest word."""
    st.session_state[LATEST_SOURCE] = source


def photo_input_ui() -> Photo | None:
    """The photo the user gave last: an uploaded file or a camera snapshot, whichever changed last.

    Both inputs keep their photo while the other gets one (they sit in tabs), so the newer one is
    analysed, and the page says so: the upload always won, and a snapshot taken after it was shown
    above results that were still the upload's. Clearing the newer one brings back the other.
    """
    upload_tab, camera_tab = st.tabs(
        [":material/upload: Upload a photo", ":material/photo_camera: Take a photo"]
    )
    with upload_tab:
        upload = st.file_uploader(
            "Photo with one or more faces",
            type=list(PHOTO_EXTENSIONS),
            key="photo_upload",
            help=f"{format_names()}. Phone photos are turned upright from their EXIF tag.",
            on_change=changed_last,
            args=("upload",),
        )
    with camera_tab:
        snapshot = st.camera_input(
            "Smile (or frown) at your camera", key="photo_camera", on_change=changed_last, args=("snapshot",)
        )
    if upload is not None and snapshot is not None:
        if st.session_state.get(LATEST_SOURCE) == "snapshot":
            chosen, said = snapshot, f"your snapshot, the newer photo: clear it to see those of {upload.name}"
        else:
            chosen, said = upload, f"{upload.name}, the newer photo: clear it to see those of your snapshot"
        st.caption(f"The results are for {said}.")
    else:
        chosen = upload or snapshot
    return Photo(chosen.file_id, chosen.name, chosen.getvalue()) if chosen else None


# Each entry holds a decoded photo of up to 4096² (50 MB), for every visitor of the server: four
# bound it to 200 MB, and five minutes is long enough for a visitor's redraws, not to keep photos.
@st.cache_data(max_entries=4, ttl=300, show_spinner="Finding faces…")
def analyze(data: bytes, settings: DetectorSettings, model_key: str, _pipeline: Pipeline) -> tuple:
    """Decode and analyse once per photo, settings and model; redraws with other toggles are free.

    Faces come in reading order, so the numbers drawn on the photo run like the cards below it.
    """
    rgb = read_image(data)
    return rgb, reading_order(_pipeline.analyze(rgb, settings))


def face_card(
    photo_id: str,
    index: int,
    face: Face,
    crop: np.ndarray,
    explainer: Callable[[], GradCam | str],
    generic: Face | None = None,
) -> None:
    """One face's verdict: emoji, emotion, confidence, what the model saw, all probabilities.

    ``generic`` is the model's own verdict when ``face`` is calibrated to a reference photo: the
    card says so, and the heatmap explains that one (Grad-CAM sees the model alone; its caption
    quoted the calibrated 51 % beside a heatmap of the model's 2 %).

    The explanation's widgets are keyed by the photo as well as the face: a new photo starts with
    them off. Keyed by the face alone, the switch was drawn off for the next photo while the
    session still held it on, so the heatmap showed under an "off" switch. ``explainer`` is only
    asked for once the switch is on: Grad-CAM needs the Keras model, and with it TensorFlow
    (seconds), which a verdict served through LiteRT does not.
    """
    # Altair and pandas, imported here rather than at the top: a first visit's page is drawn
    # before the ~1 s they take (a cold server spent it blank), and they are needed with a result.
    from pages.charts import probability_chart

    with st.container(border=True):
        left, right = st.columns([1, 2])
        with left:
            emoji_image(face.emotion, width=64)
        left.markdown(f"**Face {index}: {face.emotion}**  \n{face.confidence:.0%} confident")
        if generic is not None:
            alone = f"{generic.emotion} {generic.confidence:.0%}"
            left.caption(f"Calibrated to the reference photo; the model alone: {alone}")
        left.image(crop.astype(np.uint8), caption="what the model sees (48×48)", width=96, clamp=True)
        right.altair_chart(probability_chart(face.probabilities), width="stretch")
        if st.toggle(TOGGLE_LABEL, key=f"gradcam_{photo_id}_{index}", help=HELP):
            with st.spinner("Preparing the explanation (the first one loads TensorFlow)…"):
                cam = explainer()
            if generic is not None:
                st.caption("The heatmap explains the model alone, before the calibration.")
            heatmap_ui(f"gradcam_class_{photo_id}_{index}", crop, (generic or face).probabilities, cam)


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


def draws_anything(options: OverlayOptions) -> bool:
    """Whether the overlay draws over a face: with everything off there is nothing to download."""
    return options.emoji or options.labels or options.boxes


def display_scale(rgb: np.ndarray) -> int:
    """How many times to enlarge a photo for the page: small ones by a whole factor, up to
    :data:`MAX_ENLARGE`, so they are not a thumbnail and a face's label fits over them."""
    return max(1, min(MAX_ENLARGE, math.ceil(SMALL_PHOTO_SIDE / max(rgb.shape[:2]))))


def enlarged(rgb: np.ndarray, faces: list[Face], factor: int) -> tuple[np.ndarray, list[Face]]:
    """``rgb`` enlarged ``factor`` times with its pixels kept sharp, and the faces' boxes with it."""
    if factor == 1:
        return rgb, faces
    big = cv2.resize(rgb, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST)
    boxes = [Box(*(factor * side for side in face.box.as_list())) for face in faces]
    return big, [replace(face, box=box) for face, box in zip(faces, boxes, strict=True)]


def show_result(
    photo: Photo,
    rgb: np.ndarray,
    faces: list[Face],
    pipeline: Pipeline,
    options: OverlayOptions,
    model_key: str,
    calibration: Calibration | None,
) -> None:
    """The photo with its emojis beside one card per face; without a face, what to try instead.

    The photo is shown at most at its own size (enlarged only when small, see :func:`display_scale`):
    stretched to the column, a 30-pixel photo was a blur with its label cut off. ``calibration``
    applies to the largest face (app.calibration.calibrate_largest), whose card says so.
    """
    generic, faces = faces, calibrate_largest(faces, calibration)
    shown, shown_faces = enlarged(rgb, faces, display_scale(rgb))
    if not faces:
        image_col, tips_col = st.columns([3, 2])
        image_col.image(shown, width="content")
        tips_col.info(NO_FACE_TIPS)  # nothing was drawn: no download of the unchanged photo
        return
    annotated = pipeline.annotate(shown, shown_faces, options)
    image_col, faces_col = st.columns([3, 2])
    with image_col:
        if draws_anything(options):
            download_ui(photo.name, annotated)
        else:  # the "emojified" download would be the photo as given
            st.caption(NOTHING_DRAWN)
        st.image(annotated, width="content")
    with faces_col:
        st.subheader(f"{len(faces)} face{'s' if len(faces) > 1 else ''}")
        crops = crop_faces(to_gray(rgb), [face.box for face in faces])
        classifier = pipeline.classifier

        def explainer() -> GradCam | str:
            return grad_cam(model_key, classifier.model)

        for index, (face, own, crop) in enumerate(zip(faces, generic, crops, strict=True), start=1):
            face_card(photo.file_id, index, face, crop[:, :, 0], explainer, None if face is own else own)


st.title("Photo")
st.caption(
    "Upload a photo or take one: Emojify puts an emoji over every face it finds. "
    "Your photo is processed in memory and never stored."
)
settings = detector_settings_ui()
options = overlay_options_ui()
model_path = model_picker_ui(key="photo_model")
photo = photo_input_ui()
# The uploader is on screen at once, also while the model loads in the background (first visit
# after the server started): without a photo the page only says so, and waits for nothing.
pipeline = load_pipeline(model_path) if photo is not None or model_ready_ui(model_path) else None
if pipeline is not None and photo is not None:
    model_key = model_version(model_path)
    calibration = reference_photo_ui(pipeline, settings, model_key)
    try:
        rgb, faces = analyze(photo.data, settings, model_key, pipeline)
    except ImageError as err:
        st.error(f"**{photo.name}**: {err}.")
    else:
        show_result(photo, rgb, faces, pipeline, options, model_key, calibration)
