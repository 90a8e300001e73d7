"""The Training page's form as data: its fields, the widgets that set them, and their values.

The page lays these out and nothing else, so the form's rules (which TrainConfig field each
widget sets, a preset filling all of them, the types TrainConfig wants) live here, plain Python
the tests can read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.catalog import ARCHITECTURE_NOTES
from training.config import OPTIMIZERS, SCHEDULES, TrainConfig

BATCH_SIZES = (16, 32, 64, 128, 256, 512)
SCHEDULE_HELP = {
    "constant": "the same rate throughout",
    "plateau": "halve the rate after 3 epochs without a better validation loss",
    "cosine": "decay smoothly to zero over the planned epochs (after the warm-up)",
}
OPTIMIZER_HELP = {
    "adam": "Adam, as in the tutorials",
    "adamw": "Adam with decoupled weight decay: regularises without fighting the learning rate",
}
DEFAULT_SEED = TrainConfig(data_dir=Path(), run_name="defaults").seed


def bullet_help(docs: dict[str, str]) -> str:
    """A widget's help listing every option: option texts stay short enough for the dropdown."""
    return "\n".join(f"- **{name}**: {text}" for name, text in docs.items())


@dataclass(frozen=True)
class Field:
    """One widget of the form: Streamlit's widget name, its label and arguments, and its help."""

    name: str
    widget: str
    label: str
    args: tuple[Any, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    help: str | None = None

    @property
    def key(self) -> str:
        return f"train_{KEY_NAMES.get(self.name, self.name)}"


#: Widget keys that are not ``train_<field>`` (kept, so sessions and tests keep their names).
KEY_NAMES = {
    "batch_size": "batch",
    "learning_rate": "lr",
    "label_smoothing": "smoothing",
    "warmup_epochs": "warmup",
    "early_stopping_patience": "patience",
    "random_erasing": "erasing",
}
#: The settings most runs change, three to a row.
MAIN_FIELDS = (
    Field(
        "arch", "selectbox", "Architecture", (list(ARCHITECTURE_NOTES),), help=bullet_help(ARCHITECTURE_NOTES)
    ),
    Field("epochs", "number_input", "Epochs", (1, 1000)),
    Field("batch_size", "selectbox", "Batch size", (BATCH_SIZES,)),
    Field("learning_rate", "number_input", "Learning rate", (1e-6, 1.0), {"step": 1e-4, "format": "%.5f"}),
    Field("schedule", "selectbox", "Learning-rate schedule", (SCHEDULES,), help=bullet_help(SCHEDULE_HELP)),
    Field("optimizer", "selectbox", "Optimizer", (OPTIMIZERS,), help=bullet_help(OPTIMIZER_HELP)),
    Field("augment", "toggle", "Augmentation", help="Random flips, shifts, zooms, rotations."),
    Field(
        "class_weights",
        "toggle",
        "Class weights",
        help="Weigh classes by inverse frequency (FER2013 has 16× more happy than disgust faces).",
    ),
    Field("label_smoothing", "slider", "Label smoothing", (0.0, 0.3), {"step": 0.05}),
)
#: Regularisation, warm-up, stronger augmentation and precision: what the presets tune.
ADVANCED_FIELDS = (
    Field(
        "weight_decay",
        "number_input",
        "Weight decay",
        (0.0, 0.99),
        {"step": 0.01, "format": "%.3f"},
        "AdamW's decoupled weight decay (Adam ignores it).",
    ),
    Field(
        "warmup_epochs",
        "number_input",
        "Warm-up epochs",
        (0, 100),
        help="Ramp the learning rate up from zero first: keeps a fresh batch-normalised net stable.",
    ),
    Field(
        "early_stopping_patience",
        "number_input",
        "Early stopping patience (epochs; 0 = off)",
        (0, 1000),
        help="Stop when validation accuracy has not improved for this many epochs.",
    ),
    Field(
        "random_erasing",
        "slider",
        "Random erasing",
        (0.0, 1.0),
        {"step": 0.05},
        "Share of training images with a random patch blanked out (needs augmentation).",
    ),
    Field(
        "lighting",
        "slider",
        "Lighting changes",
        (0.0, 0.5),
        {"step": 0.05},
        "Strength of random brightness and contrast changes (needs augmentation).",
    ),
    Field(
        "mixed_precision",
        "toggle",
        "Mixed precision",
        help="Compute in bfloat16 where the hardware does it fast, in float32 elsewhere.",
    ),
)
#: The form's widget keys, by the TrainConfig field each one sets (a preset sets them all).
FIELD_KEYS = {spec.name: spec.key for spec in (*MAIN_FIELDS, *ADVANCED_FIELDS)}
INTEGER_FIELDS = ("epochs", "batch_size", "warmup_epochs", "early_stopping_patience")


def in_form_words(message: str) -> str:
    """``message`` (TrainConfig's, which names its fields as the CLI does) with each field the form
    sets called by its label: "warmup_epochs must be … below epochs" meant nothing on the page,
    where the field is *Warm-up epochs* under Advanced settings."""
    labels = {spec.name: f"*{spec.label}*" for spec in MAIN_FIELDS}
    labels |= {spec.name: f"*{spec.label}* (Advanced settings)" for spec in ADVANCED_FIELDS}
    names = "|".join(sorted(map(re.escape, labels), key=len, reverse=True))
    return re.sub(rf"\b({names})\b", lambda match: labels[match.group(1)], message)


FLOAT_FIELDS = ("learning_rate", "weight_decay", "random_erasing", "lighting", "label_smoothing")


def preset_fields(preset: str) -> dict[str, Any]:
    """Every field of the form as ``preset`` sets it, TrainConfig's defaults for the rest."""
    config = TrainConfig.from_preset(preset, data_dir=Path(), run_name="preset")
    return {name: getattr(config, name) for name in FIELD_KEYS}


def form_values(state: dict[str, Any]) -> dict[str, Any]:
    """The form's TrainConfig fields from the widgets' ``state``, typed as TrainConfig wants them."""
    values = {name: state[key] for name, key in FIELD_KEYS.items()}
    for name in INTEGER_FIELDS:
        values[name] = int(values[name])
    for name in FLOAT_FIELDS:
        values[name] = float(values[name])
    return values
