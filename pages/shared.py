"""What every page shares: the cached detector and model, and the detector/overlay sidebar.

``st.cache_resource`` objects are shared by all sessions and threads, which is why the
detector keeps one cascade per thread and the classifier is read-only after loading.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import importlib
import logging
import math
import os
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Literal

import cv2
import streamlit as st
from streamlit.navigation.page import StreamlitPage
from streamlit.runtime.scriptrunner import get_script_run_ctx

from app.access import Access, AccessError, Throttle
from app.classifier import EmotionClassifier, ModelError
from app.detection import DetectorSettings, FaceDetector
from app.emotions import DEFAULT_MODEL_PATH, REPO_ROOT, emoji_png
from app.model_card import visitor_view
from app.model_loading import is_ready, load_in_background, loaded
from app.pipeline import OverlayOptions, Pipeline
from app.runs import active_model_path, list_runs
from training.data import set_data_root

log = logging.getLogger(__name__)
#: Wrong owner passwords, per session and for the whole server: a back-off after five (app.access).
PASSWORD_GUESSES = Throttle()
#: Session-state keys of the owner's unlock: the field, the answer to the last attempt, the unlock.
_PASSWORD, _ANSWER, _UNLOCKED = "owner_password", "owner_password_answer", "owner_unlocked"


@st.cache_resource(show_spinner="Loading the face detector…")
def face_detector() -> FaceDetector:
    return FaceDetector()


def cached_classifier(path: str, modified_ns: int) -> EmotionClassifier:
    """The classifier of ``path`` for every page and session, loaded once (see app.model_loading).

    If it is still loading (the first visit after the server started), say so while waiting.
    ``modified_ns`` is the caller's version of the file; the loader checks the file itself.
    """
    if not is_ready(path):
        with st.spinner("Loading the emotion model (once after the server starts)…"):
            return loaded(path)
    return loaded(path)


def model_ready_ui(model_path: Path | None = None) -> bool:
    """Whether ``model_path`` (default: the active model) is loaded; if not, a line saying it loads.

    For a page that needs the model only once the user has given it something (a photo): it stays
    usable while the model loads in the background, instead of waiting in a spinner. The line is
    redrawn every second and goes (with a rerun of the page) as soon as the model is ready, so it
    is never shown after it stopped being true. Asking starts the load if nothing had.
    """
    path = str((model_path or active_model_path()).resolve())
    if is_ready(path):
        return True
    _loading_line(path)
    return False


@st.fragment(run_every=1.0)
def _loading_line(path: str) -> None:
    if is_ready(path):
        st.rerun()  # the whole page: it drops this line, and says so if the model could not be loaded
    st.caption(":material/hourglass_top: Loading the emotion model (once after the server starts)…")


#: Imported once the first model is loaded: what the first result needs besides the model
#: (Altair's charts, ~0.5 s of a cold start), so a visitor's first photo does not wait for it.
_FIRST_RESULT_MODULES = ("pages.charts",)
_first_result_modules = threading.Event()


def warm_up() -> None:
    """Start loading the active model now, so it is ready by the time a page needs it."""
    with contextlib.suppress(OSError):  # a missing model file is reported by the page that needs it
        load = load_in_background(active_model_path())
        if not _first_result_modules.is_set():
            _first_result_modules.set()
            load.add_done_callback(_import_first_result_modules)


def _import_first_result_modules(_: Future[EmotionClassifier]) -> None:
    """On a thread of its own: a load that is done already runs this in the page's script run."""

    def run() -> None:
        for module in _FIRST_RESULT_MODULES:
            importlib.import_module(module)

    threading.Thread(target=run, name="first-result-imports", daemon=True).start()


#: The pages (URL paths) that have run in this server process.
_opened: set[str] = set()


def run_page(page: StreamlitPage, *, announced: bool) -> None:
    """Run ``page``; the first time in this server, with a spinner that says it opens, unless a
    line already says that the server starts (``announced``).

    A page's first run imports its libraries (PyAV, pandas, Altair: seconds on a busy machine)
    before it writes a word, and Streamlit clears the previous page when the visitor clicks: the
    main block stayed empty all that time. Streamlit shows a spinner only after half a second, so
    a page that is quick says nothing; later runs find the libraries imported.
    """
    first = page.url_path not in _opened and not announced
    try:
        with st.spinner(f"Opening the {page.title} page…") if first else contextlib.nullcontext():
            page.run()
    finally:
        _opened.add(page.url_path)


def model_version(model_path: Path | None = None) -> str:
    """Identifies a model file's current contents (default: the active model), for caching results."""
    model_path = model_path or active_model_path()
    try:
        return f"{model_path.resolve()}@{model_path.stat().st_mtime_ns}"
    except OSError:
        return f"{model_path}@missing"


def load_pipeline(model_path: Path | None = None) -> Pipeline | None:
    """The pipeline with ``model_path`` (default: the active model, see app.runs).

    A chosen model that is missing or broken must not take the page down with it: the page says
    why and carries on with the shipped default. ``None`` (after an error) only when the shipped
    default itself can't be used.
    """
    model_path = model_path or active_model_path()
    try:
        classifier = cached_classifier(str(model_path.resolve()), model_path.stat().st_mtime_ns)
        return Pipeline(face_detector(), classifier)
    except (OSError, ModelError) as err:
        problem = _model_problem(model_path, err)
    if model_path.resolve() == DEFAULT_MODEL_PATH.resolve():
        st.error(f"{problem} Restore `model/emotion_cnn.keras` from git or train a model.")
        return None
    st.warning(f"{problem} Using the shipped default model instead.")
    return load_pipeline(DEFAULT_MODEL_PATH)


def _model_problem(model_path: Path, err: Exception) -> str:
    """One sentence for the user on why the model file can't be used (no server folders for visitors)."""
    if isinstance(err, FileNotFoundError):
        problem = f"The emotion model `{model_path}` is missing."
    else:
        problem = f"The emotion model `{model_path}` can't be used: {err}"
    return problem if server_paths_allowed() else visitor_view(problem)


def detector_settings_ui() -> DetectorSettings:
    """Sidebar sliders for the cascade; defaults are the ones measured best on real photos."""
    defaults = DetectorSettings()
    with st.sidebar.expander("Face detection", expanded=False):
        scale_factor = st.slider(
            "Scale step",
            1.05,
            1.5,
            defaults.scale_factor,
            0.05,
            key="scale_factor",
            help="Smaller steps find more faces (and more false ones) and take longer.",
        )
        min_neighbors = st.slider(
            "Strictness (min. neighbours)",
            1,
            12,
            defaults.min_neighbors,
            key="min_neighbors",
            help="How many overlapping detections a face needs; raise it if you see faces in walls.",
        )
        min_size = st.slider(
            "Smallest face (pixels)",
            16,
            400,
            defaults.min_size,
            4,
            key="min_size",
            help="Lower it for group photos with small faces.",
        )
    return DetectorSettings(scale_factor, min_neighbors, min_size, defaults.detection_side)


#: A widget's ``bind``: ``IN_URL`` keeps a page's choices in its URL, so a reload (or a shared
#: link) keeps them; ``None`` keeps them in the session only.
Binding = Literal["query-params"] | None
IN_URL: Binding = "query-params"


def smoothing_slider(default: float, key: str, help: str, bind: Binding = None) -> float:
    """How much a face's probabilities are averaged over time (Live and Video pages)."""
    return st.slider("Smoothing", 0.0, 1.0, default, 0.1, key=key, help=help, bind=bind)


def min_face_slider(default: float, key: str, help: str, bind: Binding = None) -> float:
    """The smallest face to look for, as a fraction of the frame height, asked in percent."""
    label = "Smallest face (% of the frame height)"
    percent = st.slider(label, 5, 60, round(default * 100), key=key, help=help, bind=bind)
    return percent / 100


def overlay_options_ui(bind: Binding = None) -> OverlayOptions:
    """Sidebar toggles for what is drawn over each face."""
    with st.sidebar.expander("Overlay", expanded=True):
        emoji = st.toggle("Emoji over faces", value=True, key="show_emoji", bind=bind)
        labels = st.toggle("Emotion labels", value=True, key="show_labels", bind=bind)
        boxes = st.toggle("Face boxes", value=False, key="show_boxes", bind=bind)
    return OverlayOptions(emoji=emoji, boxes=boxes, labels=labels)


def emoji_image(emotion: str, width: int) -> None:
    """The emotion's emoji as the same picture the overlay draws (fonts differ between browsers).

    An inline data URL: ``st.image`` would decode and re-encode the 256-pixel PNG on every call,
    and the Live page's panel draws one three times a second.
    """
    st.html(f'<img src="{emoji_data_url(emotion, width)}" width="{width}" alt="{emotion} emoji">')


@functools.cache
def emoji_data_url(emotion: str, width: int) -> str:
    """The shipped emoji picture of ``emotion``, shrunk for ``width`` CSS pixels, as a PNG data URL.

    Twice the width, for sharp pictures on high-density screens. Pictures rather than emoji
    characters: not every browser or OS has an emoji font, and a missing one shows empty boxes.
    """
    side = 2 * width
    picture = cv2.imread(str(emoji_png(emotion)), cv2.IMREAD_UNCHANGED)
    small = cv2.resize(picture, (side, side), interpolation=cv2.INTER_AREA)
    ok, png = cv2.imencode(".png", small)
    if not ok:
        raise ValueError(f"could not encode the {emotion} emoji")
    return "data:image/png;base64," + base64.b64encode(png.tobytes()).decode("ascii")


def model_choices(runs_dir: Path | None = None) -> dict[str, Path]:
    """The models a user can pick, by label: the active one first, the shipped one, each run's best."""
    active = active_model_path(runs_dir)
    choices: dict[str, Path] = {f"Active model ({_model_label(active)})": active}
    if active != DEFAULT_MODEL_PATH:
        choices["Shipped default"] = DEFAULT_MODEL_PATH
    for run in list_runs(runs_dir):
        if run.best_model is not None and run.best_model != active:
            accuracy = run.best_val_accuracy
            label = f"Run {run.name} ({accuracy:.1%} val.)" if accuracy else f"Run {run.name}"
            choices[label] = run.best_model
    return choices


def model_picker_ui(key: str, bind: Binding = None) -> Path:
    """Sidebar choice of model: the active one (default), the shipped one, or any run's best."""
    choices = model_choices()
    label = st.sidebar.selectbox(
        "Model", list(choices), key=key, help="Train more on the Training page.", bind=bind
    )
    return choices[label]


def _model_label(path: Path) -> str:
    return "shipped default" if path == DEFAULT_MODEL_PATH else f"run {path.parent.name}"


def secrets_and_environment() -> dict[str, Any]:
    """Environment variables overlaid with root-level secrets (secrets.toml wins), for settings
    that may come from either, locally or on Streamlit Community Cloud.

    Secrets keep their TOML types: ``EMOJIFY_PUBLIC = true`` is a bool, and dropping it (as only
    keeping text once did) left a deployment that asked for public mode wide open. Only tables
    (``[section]``) are left out: they are not root-level settings.
    """
    try:
        secrets = {
            key: value for key, value in st.secrets.items() if isinstance(value, str | bool | int | float)
        }
    except FileNotFoundError:  # no secrets.toml: StreamlitSecretNotFoundError subclasses it
        secrets = {}
    return {**os.environ, **secrets}


def access() -> Access:
    """This deployment's access rules (public mode, owner password, data root); see app.access.

    Every script run reads them here first (app/streamlit_app.py), so this is also where the rules' effects
    on the whole process are kept in step with them: reads under the data root stay in it
    (training.data), and a public deployment shows visitors no error details. Streamlit's
    ``client.showErrorDetails`` is one setting for the whole server, which is right here since
    public mode is too; left alone locally, where the one user is the owner and a traceback helps.
    """
    rules = Access.from_settings(secrets_and_environment())
    set_data_root(rules.data_root)
    if rules.public and st.get_option("client.showErrorDetails") != "none":
        st.set_option("client.showErrorDetails", "none")  # uncaught errors: a generic sentence only
    return rules


def owner_unlocked(feature: str) -> bool:
    """Whether owner-only ``feature`` may be used in this session, after saying why not if not.

    Locally (not public) always; in public mode once the owner typed the password in the sidebar.
    Each attempt is checked once, when typed (not again on every rerun), and wrong ones slow the
    next ones down (PASSWORD_GUESSES); the field is emptied, so the password is not kept.
    """
    rules = access()
    if not rules.public or _session_unlocked():
        return True
    if not rules.owner_features_available:
        st.info(f"{feature} is switched off in this public deployment.")
        return False
    st.sidebar.text_input(
        "Owner password", type="password", key=_PASSWORD, on_change=_check_password, args=(rules,)
    )
    if _session_unlocked():
        return True
    answer = st.session_state.get(_ANSWER)
    if isinstance(answer, str) and answer:
        st.sidebar.error(answer)
    if wait := PASSWORD_GUESSES.wait_s(_session_key()):
        st.sidebar.warning(f"Too many wrong passwords: the next one is checked in {math.ceil(wait)} s.")
    st.info(f"{feature} is for the owner of this public deployment: enter the owner password in the sidebar.")
    return False


def _check_password(rules: Access) -> None:
    """The password field's callback: check the attempt once, log a wrong one (never the guess)."""
    attempt = st.session_state.get(_PASSWORD)
    st.session_state[_PASSWORD] = ""
    if not isinstance(attempt, str) or not attempt:
        return
    session = _session_key()
    if wait := PASSWORD_GUESSES.wait_s(session):
        log.warning("Owner password not checked (session %s): %.0f s of back-off left", session, wait)
        st.session_state[_ANSWER] = "That password was not checked: too many wrong ones came first."
        return
    if rules.unlocks(attempt):
        PASSWORD_GUESSES.succeeded(session)
        st.session_state[_UNLOCKED] = True
        st.session_state[_ANSWER] = ""
        log.info("Owner password accepted (session %s)", session)
        return
    mine, server = PASSWORD_GUESSES.failed(session)
    log.warning("Wrong owner password (session %s: %d in a row; %d on this server)", session, mine, server)
    st.session_state[_ANSWER] = "Wrong password."


def _session_key() -> str:
    """A short, stable name for this browser session: the throttle's key and the log's."""
    ctx = get_script_run_ctx()
    session_id = ctx.session_id if ctx is not None else "no-session"
    return hashlib.sha256(session_id.encode()).hexdigest()[:8]


def _session_unlocked() -> bool:
    """Whether the owner unlocked this session: only the exact ``True`` this module stores counts.

    Session state can hold what a client sent (a forged widget value under the same key), and a
    truthy string must not unlock anything, nor may reading it raise (a KeyError once showed a
    visitor a traceback).
    """
    try:
        return st.session_state.get(_UNLOCKED) is True
    except Exception:  # whatever Streamlit raises for a forged value means "locked"
        return False


def server_paths_allowed() -> bool:
    """Whether this session may name files and folders on the server (never shown to visitors).

    Locally always; in public mode only after the owner unlocked this session (the password
    field that owner-only pages show), so visitors cannot probe the server's disk.
    """
    return not access().public or _session_unlocked()


def typed_server_path(typed: str) -> Path | None:
    """``typed`` as an absolute path allowed by the access rules, or None after saying why not.

    Relative paths are taken from the data root when one is set, else from the repository.
    """
    rules = access()
    path = Path(typed).expanduser()
    if rules.data_root is None and not path.is_absolute():
        path = REPO_ROOT / path
    try:
        return rules.resolve(path)
    except AccessError as error:
        st.error(str(error))
        return None
