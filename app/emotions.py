"""The one place that defines what the model sees and what it answers.

Every other module (training, serving, pages, tests) reads these names instead of repeating them,
so a class can never be renamed or reordered in one place only.
"""

from __future__ import annotations

from pathlib import Path

#: FER2013's classes in alphabetical order: the order of the model's output vector and of the
#: Kaggle folder layout's class folders.
CLASS_NAMES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
NUM_CLASSES = len(CLASS_NAMES)

#: Side of the square grayscale crop the model takes, in pixels (FER2013's native size).
IMAGE_SIZE = 48
#: The model's input shape without the batch axis: grayscale pixels in 0..255, float32.
INPUT_SHAPE: tuple[int, int, int] = (IMAGE_SIZE, IMAGE_SIZE, 1)

#: The emoji shown for each class, as text (for labels) and as the PNG under ``emojis/``.
EMOJI: dict[str, str] = {
    "angry": "😠",
    "disgust": "🤢",
    "fear": "😨",
    "happy": "😄",
    "neutral": "😐",
    "sad": "😢",
    "surprise": "😮",
}

REPO_ROOT = Path(__file__).resolve().parent.parent
EMOJI_DIR = REPO_ROOT / "emojis"
DEFAULT_MODEL_PATH = REPO_ROOT / "model" / "emotion_cnn.keras"


def emoji_png(emotion: str) -> Path:
    """Path of the emoji picture for ``emotion`` (files are named after the class)."""
    if emotion not in EMOJI:
        raise KeyError(f"unknown emotion {emotion!r}; expected one of {', '.join(CLASS_NAMES)}")
    return EMOJI_DIR / f"{emotion}.png"
