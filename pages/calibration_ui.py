"""Calibrate-to-my-face widgets for the Live and Photo pages (the numbers live in app.calibration).

A calibration is a few numbers per expression, held in this browser session only (the Live
page's processor, or this module's session key on the Photo page); no frame or photo is kept.
*Download my calibration* and *Load calibration* carry it between sessions as a small JSON file,
checked on load.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import streamlit as st

from app.calibration import (
    COLLECT_SECONDS,
    Calibration,
    CalibrationError,
    CalibrationStatus,
    LiveCalibrator,
    calibrate_photos,
)
from app.detection import DetectorSettings
from app.emotions import EMOJI
from app.images import PHOTO_EXTENSIONS, ImageError, read_image
from app.pipeline import Pipeline

#: The expression the Live page offers to show after the neutral face.
EXAMPLE = "happy"
PRIVACY = "Kept in this browser session only: a few numbers per expression, never a frame or photo."


@dataclass(frozen=True)
class Redo:
    """What a page offers when its calibration does not fit: each page names only what it has."""

    #: The face calibrated on did not look neutral to the model.
    not_neutral: str
    #: The calibration was made with another model.
    other_model: str


#: The Live page calibrates on the camera, and has a Reset button.
LIVE_REDO = Redo(
    not_neutral="if it was not your neutral face, Reset and calibrate again.",
    other_model="Calibrate again for the best fit.",
)
#: The Photo page has no Reset and no calibrate action: a reference photo is how it calibrates (one
#: also takes over from a loaded calibration file), and it is read with the model in use.
PHOTO_REDO = Redo(
    not_neutral="if it was not this person's neutral face, choose another reference photo above.",
    other_model="For the best fit, choose a neutral photo of this person above: it is read with this model.",
)


def download_ui(calibration: Calibration, key: str) -> None:
    st.download_button(
        "Download my calibration",
        calibration.to_json(),
        file_name="emojify_calibration.json",
        mime="application/json",
        key=key,
        icon=":material/download:",
    )


def loaded_calibration(key: str) -> Calibration | None:
    """A calibration file the user gives, once per file; an error message for anything else."""
    upload = st.file_uploader("Load calibration", type=["json"], key=key, help=PRIVACY)
    if upload is None or st.session_state.get(f"{key}_done") == upload.file_id:
        return None
    st.session_state[f"{key}_done"] = upload.file_id
    try:
        return Calibration.from_json(upload.getvalue())
    except CalibrationError as err:
        st.session_state[f"{key}_error"] = f"**{upload.name}**: {err}."
        return None


def load_error(key: str) -> None:
    """The latest load error (kept across the panel's refreshes until the next file)."""
    if message := st.session_state.get(f"{key}_error"):
        st.error(message)


def model_note(calibration: Calibration, model: str, redo: Redo) -> None:
    if calibration.model and calibration.model != model:
        st.warning(
            f"This calibration was made with the model *{calibration.model}*; the verdicts now come from "
            f"*{model}*, which may read your face differently. {redo.other_model}"
        )


def reference_warning(calibration: Calibration, redo: Redo) -> str | None:
    """Why to be wary when the face calibrated on did not look neutral to the model (that
    expression now reads as neutral), or None when it did."""
    generic = calibration.generic_verdict()
    if generic == "neutral":
        return None
    return f"Before calibrating, the model read that face as {EMOJI[generic]} {generic}: {redo.not_neutral}"


def start(calibrator: LiveCalibrator, expression: str) -> None:
    """A button's callback: runs before the panel is drawn, so the panel shows the countdown at once."""
    # A smile needs a calibration: one reset meanwhile leaves nothing to add it to, and the panel
    # then offers to calibrate, which is all there is to say.
    with contextlib.suppress(CalibrationError):
        calibrator.start(expression)


def live_calibration_ui(calibrator: LiveCalibrator, playing: bool, model: str) -> None:
    """The Live panel's calibration section: start, countdown, who is calibrated, smile, reset, files."""
    calibrator.model = model
    status = calibrator.status()
    st.markdown("**Calibrate to my face**")
    if loaded := loaded_calibration("live_calibration_file"):
        st.session_state.pop("live_calibration_file_error", None)
        calibrator.load(loaded)
        status = calibrator.status()
    load_error("live_calibration_file")
    if status.phase == "collecting":
        collecting(status)
        return
    if status.phase == "failed":
        st.warning(status.message)
    if status.calibration is None:
        st.caption(f"Look at the camera with a neutral face for {COLLECT_SECONDS:.0f} s, alone in view.")
        st.button(
            "Calibrate to my face",
            key="calibrate_start",
            disabled=not playing,
            on_click=start,
            args=(calibrator, "neutral"),
        )
        return
    calibrated(calibrator, status, playing, model)


def collecting(status: CalibrationStatus) -> None:
    what = "a neutral face" if status.expression == "neutral" else f"your {status.expression} face"
    st.info(f"**Calibrating: hold {what}… {status.seconds_left:.0f} s**  \n{status.message}")


def calibrated(calibrator: LiveCalibrator, status: CalibrationStatus, playing: bool, model: str) -> None:
    calibration = status.calibration
    assert calibration is not None
    if status.track is None:
        who = "the next face seen alone in view"
    else:
        who = f"face #{status.track}" + ("" if status.in_view else " (not in view now)")
    shown = [name for name, _ in calibration.examples]
    extra = f", and your {' and '.join(shown)} face" if shown else ""
    done = f"Verdicts are calibrated for **{who}** (your neutral face{extra}); other faces stay generic."
    # Calibrated on a laugh, it is no success: that laugh now reads as neutral (a green box and a
    # grey caption beneath it told it the other way round).
    if (wary := reference_warning(calibration, LIVE_REDO)) is None:
        st.success(done)
    else:
        st.warning(f"{done}  \n{wary}")
    model_note(calibration, model, LIVE_REDO)
    smile, reset = st.columns(2)
    if EXAMPLE not in shown:
        smile.button(
            f"Now show me a smile {EMOJI[EXAMPLE]}",
            key="calibrate_smile",
            disabled=not playing,
            on_click=start,
            args=(calibrator, EXAMPLE),
        )
    reset.button("Reset", key="calibrate_reset", help="Generic verdicts for all.", on_click=calibrator.reset)
    download_ui(calibration, "calibration_download")
    st.caption(PRIVACY)


@st.cache_data(max_entries=4, show_spinner="Reading the reference photo…")
def reference_calibration(
    data: bytes, settings: DetectorSettings, model_key: str, model: str, _pipeline: Pipeline
) -> Calibration:
    return calibrate_photos(_pipeline, [read_image(data)], settings, model=model, face="reference photo")


def reference_photo_ui(pipeline: Pipeline, settings: DetectorSettings, model_key: str) -> Calibration | None:
    """*Use a reference photo of this person*: their neutral photo; None without one (or on error)."""
    with st.expander("Use a reference photo of this person", icon=":material/tune:"):
        st.caption(
            "A neutral photo of the person in the photo: their face (the largest) is then read against "
            "their own resting face, which the model may misread as sad or miss a subtle smile on. " + PRIVACY
        )
        upload = st.file_uploader(
            "Neutral photo of this person", type=list(PHOTO_EXTENSIONS), key="photo_reference"
        )
        if (loaded := loaded_calibration("photo_calibration_file")) is not None:
            st.session_state.pop("photo_calibration_file_error", None)
            st.session_state.photo_calibration = loaded
        load_error("photo_calibration_file")
        if upload is not None:
            model = getattr(pipeline.classifier, "name", "")
            try:
                calibration = reference_calibration(upload.getvalue(), settings, model_key, model, pipeline)
            except (ImageError, CalibrationError) as err:
                st.error(f"**{upload.name}**: {err}.")
                return None
        elif "photo_calibration" in st.session_state:
            calibration = st.session_state.photo_calibration
            if st.button("Forget the loaded calibration", key="photo_calibration_reset"):
                del st.session_state.photo_calibration
                st.rerun()
        else:
            return None
        if (wary := reference_warning(calibration, PHOTO_REDO)) is not None:
            st.warning(wary)
        model_note(calibration, getattr(pipeline.classifier, "name", ""), PHOTO_REDO)
        download_ui(calibration, "photo_calibration_download")
        return calibration
