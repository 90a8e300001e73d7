"""The one description of a training run, shared by the CLI and the Training page.

A TrainConfig is plain data (no Keras import): it is validated when created, saved as the run's
``config.json`` and embedded in the model card, and ``from_dict`` rebuilds it from either, so a run
can be repeated or resumed from what it wrote.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.runs import default_runs_dir

SCHEDULES = ("constant", "plateau", "cosine")
#: Splits the trainer may validate on. PrivateTest (alone or inside ``test``) is excluded so the
#: reported score never comes from images that picked the best epoch.
VALIDATION_SPLITS = ("public_test",)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what a training run does and where it writes.

    ``early_stopping_patience`` is in epochs without a better validation accuracy; 0 disables it.
    ``limit_per_class`` keeps only the first K images of each class in every split (for tests and
    quick trials); None uses everything.
    """

    data_dir: Path
    run_name: str
    arch: str = "classic"
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    augment: bool = True
    class_weights: bool = False
    label_smoothing: float = 0.0
    schedule: str = "plateau"
    early_stopping_patience: int = 10
    seed: int = 1337
    runs_dir: Path = field(default_factory=default_runs_dir)
    limit_per_class: int | None = None
    validation_split: str = "public_test"

    def __post_init__(self) -> None:
        # Coerce paths so a config built from strings (JSON, a form) behaves like one built in code.
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        object.__setattr__(self, "runs_dir", Path(self.runs_dir))
        problems = self._problems()
        if problems:
            raise ValueError("invalid training config: " + "; ".join(problems))

    def _problems(self) -> list[str]:
        """Every invalid field at once, so a form can show them together."""
        checks = [
            (
                bool(self.run_name)
                and Path(self.run_name).name == self.run_name
                and self.run_name not in {".", ".."},
                f"run_name must be a plain folder name, got {self.run_name!r}",
            ),
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}"),
            (0 <= self.label_smoothing < 1, f"label_smoothing must be in [0, 1), got {self.label_smoothing}"),
            (
                self.schedule in SCHEDULES,
                f"schedule must be in {SCHEDULES}, got {self.schedule!r}",
            ),
            (
                self.early_stopping_patience >= 0,
                f"early_stopping_patience must be >= 0, got {self.early_stopping_patience}",
            ),
            (
                self.limit_per_class is None or self.limit_per_class >= 1,
                f"limit_per_class must be >= 1 or None, got {self.limit_per_class}",
            ),
            (
                self.validation_split in VALIDATION_SPLITS,
                f"validation_split must be in {VALIDATION_SPLITS}, got {self.validation_split!r}",
            ),
        ]
        return [message for ok, message in checks if not ok]

    @property
    def run_dir(self) -> Path:
        """The folder this run writes into."""
        return self.runs_dir / self.run_name

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (paths as strings)."""
        data = dataclasses.asdict(self)
        data["data_dir"] = str(self.data_dir)
        data["runs_dir"] = str(self.runs_dir)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Rebuild a config from ``to_dict`` output; unknown keys are an error, not silently dropped."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training config fields: {', '.join(unknown)}")
        return cls(**data)
