"""Training targets, from the labels alone or distilled from a teacher model.

A net small enough for live video (a few milliseconds per face on a CPU) can learn more from a big
ensemble's probabilities than from FER2013's one-hot labels: the teacher says *how* angry-looking
a face is and which expressions it is confused with, and it overrules some of the dataset's noisy
labels. (It takes a teacher clearly better than the student: distilled from the shipped pair, a
20-epoch ``resnet`` gained nothing; see the README.) The targets are computed offline, one
teacher pass over the clean training images before the first epoch, instead of a pass over every
augmented batch:

- it costs one teacher pass instead of one per epoch (a teacher ensemble is 10x the student),
- any saved model serves as teacher on any backend, with nothing to install, and
- the student stays an ordinary Keras model that ``fit`` trains with the same loss, checkpoints
  and resume as any other run.

The augmentations (flips, small shifts, zooms and rotations, lighting) preserve the expression, so
the teacher's verdict on the clean image stands for every augmented copy, as the label does.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from app.classifier import EmotionClassifier, ModelError
from app.emotions import NUM_CLASSES
from training.analysis import Progress, predict_dataset
from training.data import Dataset


class TeacherError(ValueError):
    """The teacher model is missing, unreadable or breaks the model contract; message for users."""


def training_targets(
    dataset: Dataset,
    teacher: Path | None = None,
    weight: float = 0.7,
    *,
    on_progress: Progress | None = None,
) -> np.ndarray:
    """The ``(N, 7)`` targets to fit ``dataset`` to: one-hot, or ``weight`` of them the teacher's.

    With a teacher the target is ``(1 - weight) * one_hot + weight * teacher_probabilities``: the
    label keeps a share, so a teacher that is wrong on an image cannot take the student with it.
    The teacher's pass takes minutes for an ensemble, so ``on_progress(done, total)`` hears of
    each batch (and may raise to end it).
    """
    labels = keras.utils.to_categorical(dataset.y, NUM_CLASSES).astype(np.float32)
    if teacher is None:
        return labels
    try:
        model = EmotionClassifier.load(teacher)
    except ModelError as err:
        raise TeacherError(f"teacher {teacher}: {err}") from err
    print(f"distilling from {teacher} (weight {weight:g}) on {len(dataset):,} {dataset.split} images")
    probabilities = predict_dataset(model, dataset, on_progress=on_progress).probabilities
    agreement = float(np.mean(probabilities.argmax(axis=1) == dataset.y))
    print(f"teacher agrees with {agreement:.1%} of the {dataset.split} labels")
    return ((1 - weight) * labels + weight * probabilities).astype(np.float32)
