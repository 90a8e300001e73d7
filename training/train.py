"""Train a model on FER2013 and record the run in its own folder.

    python -m training.train --data /root/data/fer2013 --arch classic --epochs 30 --run-name classic

``runs_dir/run_name/`` receives, each file replaced atomically after every epoch:

    config.json   the TrainConfig (``TrainConfig.from_dict`` rebuilds it)
    history.csv   epoch, loss, accuracy, val_loss, val_accuracy, lr (at the epoch's start), seconds;
                  the val_ columns are NaN while the epoch validates, and stay so when a Stop cut
                  its validation short (a resume measures them before it trains on)
    last.keras    the full training state after the latest epoch's training (optimizer included),
                  written as its validation begins, for resuming
    best.keras    the epoch with the best validation accuracy so far, for inference (no optimizer
                  state, so it is a third of the size); take it at any time, even mid-run
    best.json     best.keras's model card (app.model_card)

A stopped or finished run goes on from ``last.keras`` with its optimizer state, learning rate and
history, optionally for more epochs than it first asked for:

    python -m training.train --resume runs/classic --epochs 40

Validation is PublicTest, unless the user chooses the whole test folder (``--validation test``):
PrivateTest stays unseen for the final report (training.evaluate), and a dataset without PublicTest
images is refused rather than validated on PrivateTest behind the user's back (training.validation).
``train()`` is the whole job, so the CLI and the Training page's training process (training.jobs) run the
same code.

With more than one device visible (``keras.distribution.list_devices()``: several GPUs, or CPUs
split into logical devices) the run is data-parallel: each batch is split across the devices,
through Keras's distribution API (``DataParallel``) on JAX and a ``MirroredStrategy`` on
TensorFlow, whose Keras-3 trainer distributes through tf.distribute rather than that API.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import io
import json
import math
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
from sklearn.utils.class_weight import compute_class_weight

from app.emotions import CLASS_NAMES, NUM_CLASSES
from app.model_card import atomic_output, base_card, write_card
from app.runs import LOCK_FILE, RunBusy, epoch_count, hold_run, is_held, read_history, write_status
from model.architectures import ARCHITECTURES, build_model
from training.analysis import Progress
from training.config import OPTIMIZERS, PRESETS, SCHEDULES, VALIDATION_SPLITS, TrainConfig
from training.data import Dataset, DatasetError, load_split
from training.distill import TeacherError, training_targets
from training.export import serving_model
from training.outcomes import (
    NOTHING_KEPT,
    ResumeError,
    TrainingStopped,
    check_checkpoint,
    disk_message,
    nothing_new,
    stopped_message,
)
from training.precision import choose_policy, dtype_policy, float32_config
from training.validation import check_validation
from training.votes import (
    LABEL_SOURCES,
    VOTES_ENV,
    VOTES_FILE_NAME,
    VotesError,
    distributions,
    find_votes,
    match,
    read_votes,
)
from training.warm_start import WarmStartError, source_model, warm_start

HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")
# ReduceLROnPlateau settings for the "plateau" schedule: halve the rate after 3 epochs without a
# lower validation loss, down to 1/100 of the starting rate.
PLATEAU_FACTOR = 0.5
PLATEAU_PATIENCE = 3
PLATEAU_MIN_FRACTION = 0.01


class HistoryWriter(keras.callbacks.Callback):
    """Keeps one row per epoch and rewrites ``history.csv`` with all of them.

    An epoch's row is written twice: when its training batches are done (validation to come, so
    ``NaN`` there) and again with its validation when it ends. A Stop while validating therefore
    finds the epoch already kept, with its validation marked as not measured.
    """

    def __init__(self, path: Path, rows: Sequence[dict[str, float]] = ()) -> None:
        super().__init__()
        self.path = path
        # Epochs are counted in whole numbers: read back from the CSV they are floats, and a
        # resumed run rewrote its earlier epochs as 1.0, 2.0.
        self.rows: list[dict[str, float]] = [{**row, "epoch": int(row["epoch"])} for row in rows]
        self._started = 0.0
        self._lr = 0.0
        self._epoch: int | None = None  # the epoch under way (1-based), None outside one
        self._train_logs: dict[str, Any] = {}

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._started = time.perf_counter()
        self._lr = current_learning_rate(self.model)
        self._epoch = epoch + 1

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._train_logs = logs or {}  # the epoch's running means: its training numbers at the end

    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self._epoch is not None:  # fit's validation, not a separate evaluate
            self.record(self._epoch, self._train_logs)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.record(epoch + 1, logs or {})
        self._epoch = None

    def record(self, epoch: int, logs: dict[str, Any]) -> None:
        """Write epoch ``epoch``'s row from ``logs`` (a missing number is NaN), replacing an earlier one."""
        row = {name: float(logs.get(name, math.nan)) for name in HISTORY_COLUMNS[1:5]}
        row = {"epoch": epoch, **row, "lr": self._lr, "seconds": time.perf_counter() - self._started}
        if self.rows and self.rows[-1]["epoch"] == epoch:
            self.rows[-1] = row
        else:
            self.rows.append(row)
        self.write()

    def write(self) -> None:
        """Replace history.csv with the rows (atomically)."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=HISTORY_COLUMNS)
        writer.writeheader()
        writer.writerows(self.rows)
        with atomic_output(self.path) as tmp:
            tmp.write_text(buffer.getvalue(), encoding="utf-8")


class StopWhenAsked(keras.callbacks.Callback):
    """Ends fit at the next batch boundary once ``event`` is set (the Training page's Stop button).

    During an epoch's training batches it raises, so the partial epoch writes nothing (setting
    ``model.stop_training`` would have Keras record it as a whole one). Once they are done the
    epoch's training is on disk (HistoryWriter and Checkpointer write it when validation begins),
    so a Stop while validating ends the validation after its current batch (PublicTest takes
    seconds on a CPU, and Stop must not wait for it) and keeps the epoch; its validation numbers,
    measured on part of the set only, are replaced by NaN in the epoch's logs, before the
    callbacks after this one read them, so no half-measured epoch can become the best one. A
    resume measures them (see ``revalidate``).
    """

    def __init__(self, event: threading.Event, validation_steps: int) -> None:
        super().__init__()
        self.event = event
        self.validation_steps = validation_steps
        self.cut = False  # whether the latest validation was ended before its last batch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.event.is_set():
            raise TrainingStopped

    on_epoch_begin = on_train_batch_end

    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.cut = False

    def on_test_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.event.is_set():
            self.model.stop_evaluating = True
            self.cut = batch + 1 < self.validation_steps

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        # The epoch's files are written by the callbacks after this one, in this same epoch end.
        if self.cut and logs is not None:
            logs.update({name: math.nan for name in logs if name.startswith("val_")})
        if self.event.is_set():
            self.model.stop_training = True


class Checkpointer(keras.callbacks.Callback):
    """Saves ``last.keras`` once an epoch's training is done, and ``best.keras`` + its card whenever
    val_accuracy improves.

    ``last.keras`` is written when validation begins (validation changes no weight), so a Stop
    while validating keeps the epoch. Reads the epoch rows of ``history`` (which must come before
    it in the callback list) so the card's timing matches history.csv. An epoch whose validation
    was not measured (NaN) is never the best one.
    """

    def __init__(self, run_dir: Path, card: dict[str, Any], history: HistoryWriter, n_train: int) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.card = card
        self.history = history
        self.n_train = n_train
        self._unsaved: int | None = None  # the epoch under way until its last.keras is written
        # A resumed run starts from the best epoch its history already holds, if its file survived:
        # on a tie the earliest, the one best.keras holds (a later epoch replaces it only when better).
        done = [
            (row["val_accuracy"], -int(row["epoch"]))
            for row in history.rows
            if not math.isnan(row["val_accuracy"])
        ]
        if not (run_dir / "best.keras").is_file():
            done = []
        accuracy, negative_epoch = max(done, default=(-math.inf, 0))
        self.best_accuracy, self.best_epoch = accuracy, -negative_epoch

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._unsaved = epoch + 1

    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.save_last()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.keep_if_best(epoch + 1, float((logs or {}).get("val_accuracy", math.nan)), self.model)
        self.save_last()  # an epoch without validation (none in this app) is saved here

    def save_last(self) -> None:
        """Write last.keras for the epoch under way, once (not for an evaluate outside fit)."""
        if self._unsaved is None:
            return
        self._unsaved = None
        with atomic_output(self.run_dir / "last.keras") as tmp:
            self.model.save(tmp)

    def keep_if_best(self, epoch: int, accuracy: float, model: keras.Model) -> None:
        """Save ``model`` as best.keras if epoch ``epoch``'s ``accuracy`` beats the best (NaN never does)."""
        if accuracy > self.best_accuracy:
            self.best_accuracy, self.best_epoch = accuracy, epoch
            with atomic_output(self.run_dir / "best.keras") as tmp:
                inference_copy(model).save(tmp)
            self.write_card()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        # Epochs after the best one still change epochs_run and the timings.
        if self.best_epoch:
            self.write_card()

    def write_card(self) -> None:
        """Write best.json from the static card and the epochs run so far."""
        seconds = sum(row["seconds"] for row in self.history.rows)
        epochs = len(self.history.rows)
        self.card["training"].update(
            epochs_run=epochs,
            best_epoch=self.best_epoch,
            best_val_accuracy=self.best_accuracy,
            duration_s=round(seconds, 1),
            images_per_s=round(self.n_train * epochs / seconds, 1),
        )
        write_card(self.run_dir / "best.keras", self.card)


def inference_copy(model: keras.Model) -> keras.Model:
    """The model as served, in float32, without optimizer or compile state: what the app loads.

    Served (:func:`training.export.serving_model`): a plain ``model(x)`` on a file that kept the
    augmentation layers would augment the faces, so a run's best.keras must not keep them.
    """
    # from_config, unlike clone_model, does not re-compile; float32_config undoes mixed precision.
    copy = type(model).from_config(float32_config(model.get_config()))
    copy.set_weights([keras.ops.cast(weight, "float32") for weight in model.get_weights()])
    return serving_model(copy)


def current_learning_rate(model: keras.Model) -> float:
    """The optimizer's learning rate now (a schedule is evaluated at the current step)."""
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def train(
    config: TrainConfig,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    *,
    stop: threading.Event | None = None,
    verbose: int | str = "auto",
    on_teacher: Progress | None = None,
) -> Path:
    """Run the training ``config`` describes and return its run folder.

    ``callbacks`` run after the ones writing the run folder, so in their ``on_epoch_end`` the
    epoch's files are already on disk. Setting ``stop`` ends the run within one batch (of training
    or of validation), keeping every epoch whose training batches were done (so a resume starts
    after them). Raises FileExistsError when
    the run folder exists (a run is never overwritten), DatasetError for unusable data and
    TeacherError for an unusable teacher model, VotesError for a votes file that is missing or
    does not fit the dataset, WarmStartError for a model to start from that does not fit, all
    before anything is written; TrainingStopped
    when ``stop`` was set while the data was loading or the teacher labelling it (the run folder
    is not made then). ``on_teacher(done, total)`` hears how far the teacher's pass is.
    """
    run_dir = config.run_dir
    if run_dir.exists():
        raise FileExistsError(f"run folder {run_dir} already exists; choose another run name or delete it")
    check_validation(config.data_dir, config.validation_split)
    keras.utils.set_random_seed(config.seed)
    if config.labels != "fer2013" and config.votes is None:
        config = dataclasses.replace(config, votes=find_votes(None, config.data_dir).resolve())
    start_from = None if config.init_from is None else source_model(config.init_from, config.init_member)
    train_set, val_set = load_data(config)
    if stop is not None and stop.is_set():
        raise TrainingStopped(NOTHING_KEPT)
    with data_parallel(config.batch_size) as devices:
        data = fit_data(config, train_set, val_set, devices, stop, on_teacher)
        policy, why = choose_policy(config.mixed_precision)
        print(f"precision: {why}")
        with dtype_policy(policy):
            model = build_model(
                config.arch, augment=config.augment, erasing=config.random_erasing, lighting=config.lighting
            )
            if start_from is not None:
                warm_start(model, start_from)
                print(f"starting from the weights of {config.init_from} ({start_from.name})")
        run_dir.mkdir(parents=True)
        write_config(config)
        model.compile(
            optimizer=make_optimizer(config, steps_per_epoch(config, data.train)),
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
            metrics=["accuracy"],
        )
        return fit(model, config, data, [], callbacks, stop, verbose)


def resume(
    run_dir: Path,
    epochs: int | None = None,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    *,
    stop: threading.Event | None = None,
    verbose: int | str = "auto",
    on_teacher: Progress | None = None,
) -> Path:
    """Continue the run in ``run_dir`` from ``last.keras`` up to ``epochs`` (default: its own).

    The optimizer state, learning rate and history carry over, so the result matches an
    uninterrupted run except for the random augmentation. A cosine schedule is rebuilt for
    ``epochs``, so a run can be shortened or extended and still anneal to zero at its end.
    Raises ResumeError when the folder holds no resumable run or has already run ``epochs``
    epochs, and TrainingStopped when ``stop`` was set while the data was loading or the teacher
    labelling it (nothing is written then); ``on_teacher`` as for ``train``.
    """
    config = read_config(run_dir)
    if epochs is not None:
        config = dataclasses.replace(config, epochs=epochs)
    last = run_dir / "last.keras"
    check_checkpoint(last)
    if is_held(run_dir):
        raise ResumeError(f"run {run_dir.name!r} is being trained by another process right now")
    train_set, val_set = load_data(config)
    if stop is not None and stop.is_set():
        raise TrainingStopped(nothing_new(read_history(run_dir / "history.csv"), config.epochs))
    with data_parallel(config.batch_size) as devices:
        data = fit_data(config, train_set, val_set, devices, stop, on_teacher)
        model = load_checkpoint(last)
        # last.keras is written after history.csv, so after a crash between the two the history may
        # hold one epoch more than the model; the optimizer's step count says which epochs it has.
        done = round(int(model.optimizer.iterations) / steps_per_epoch(config, data.train))
        rows = read_history(run_dir / "history.csv")[:done]
        if done >= config.epochs:
            raise ResumeError(
                f"{run_dir} has already run {done} of {config.epochs} epochs; pass a larger --epochs"
            )
        if config.schedule == "cosine":
            # The cosine runs over the run's epochs: resuming for more or fewer stretches or
            # squeezes what is left of it, from the current step, instead of ending mid-curve.
            model.optimizer.learning_rate = learning_rate_for(config, steps_per_epoch(config, data.train))
        keras.utils.set_random_seed(config.seed + done)
        write_config(config)
        print(f"resuming {run_dir} after epoch {done} of {config.epochs}")
        return fit(model, config, data, rows, callbacks, stop, verbose)


@dataclass(frozen=True)
class FitData:
    """What ``fit`` trains on: the images and their targets, for training and for validation."""

    train: Dataset
    targets: np.ndarray
    val: Dataset
    val_targets: np.ndarray
    #: For the model card: which labels, and how many images the votes covered.
    labels: dict[str, Any]


def fit_data(
    config: TrainConfig,
    train_set: Dataset,
    val_set: Dataset,
    devices: int,
    stop: threading.Event | None,
    on_teacher: Progress | None,
) -> FitData:
    """The run's images and targets: labels (or a teacher's mix) or FER+ votes, as config.labels says.

    With votes, validation scores against the annotators too, so the best epoch is the one that
    agrees with people most; images without a usable vote are left out of both, and counted.
    """
    if config.labels == "fer2013":
        train_set, val_set = even_split(train_set, devices), even_split(val_set, devices)
        return FitData(
            train_set,
            teacher_targets(train_set, config, stop, on_teacher),
            val_set,
            keras.utils.to_categorical(val_set.y, NUM_CLASSES),
            {"source": "fer2013"},
        )
    votes = read_votes(find_votes(config.votes, config.data_dir))
    chosen: list[tuple[Dataset, np.ndarray]] = []
    coverage = {}
    for dataset in (train_set, val_set):
        matched = match(votes, dataset.sources, dataset.root, dataset.split)
        print(matched.describe(dataset.split))
        coverage[dataset.split] = {"images": len(dataset), "with_votes": int(matched.usable.sum())}
        kept = even_split(subset(dataset, matched.usable), devices)
        target = distributions(matched.counts[matched.usable])[: len(kept)]
        if config.labels == "blend":
            one_hot = keras.utils.to_categorical(kept.y, NUM_CLASSES)
            target = config.votes_weight * target + (1 - config.votes_weight) * one_hot
        chosen.append((kept, target.astype(np.float32)))
    (train_set, targets), (val_set, val_targets) = chosen
    labels = {"source": config.labels, "votes_file": votes.source.name, "coverage": coverage}
    if config.labels == "blend":
        labels["votes_weight"] = config.votes_weight
    return FitData(train_set, targets, val_set, val_targets, labels)


def subset(dataset: Dataset, keep: np.ndarray) -> Dataset:
    """``dataset`` with only the images where ``keep`` is true."""
    sources = tuple(source for source, kept in zip(dataset.sources, keep, strict=True) if kept)
    return dataclasses.replace(dataset, x=dataset.x[keep], y=dataset.y[keep], sources=sources)


def teacher_targets(
    train_set: Dataset, config: TrainConfig, stop: threading.Event | None, on_teacher: Progress | None
) -> np.ndarray:
    """The run's fit targets (see training.distill); a Stop ends the teacher's pass within a batch."""

    def progress(done: int, total: int) -> None:
        if stop is not None and stop.is_set():
            raise TrainingStopped(
                "stopped while the teacher labelled the training images; nothing was written"
            )
        if on_teacher is not None:
            on_teacher(done, total)

    return training_targets(train_set, config.teacher, config.teacher_weight, on_progress=progress)


def load_checkpoint(path: Path) -> keras.Model:
    """``last.keras`` with its optimizer; ResumeError for a file this app did not write.

    Safe mode refuses files that carry code (a Lambda layer): that is not a checkpoint of ours.
    """
    try:
        return keras.saving.load_model(path)
    except (ValueError, TypeError, OSError, KeyError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ResumeError(
            f"{path} can't be loaded as this app's checkpoint, so the run can't go on from it: {first_line}"
        ) from err


def fit(
    model: keras.Model,
    config: TrainConfig,
    data: FitData,
    done_rows: list[dict[str, float]],
    callbacks: Sequence[keras.callbacks.Callback],
    stop: threading.Event | None,
    verbose: int | str,
) -> Path:
    """Fit a compiled ``model`` to ``data`` (labels, a teacher's mix or votes) from epoch
    ``len(done_rows)`` on.

    ``status.json`` says ``running`` meanwhile, then ``finished``, ``stopped`` (``stop`` was set or
    Ctrl+C) or ``failed`` with the error; errors are re-raised.
    """
    run_dir = config.run_dir
    train_set, val_set = data.train, data.val
    history = HistoryWriter(run_dir / "history.csv", done_rows)
    checkpointer = Checkpointer(run_dir, training_card(config, data), history, len(train_set))
    print(
        f"{config.arch}: {model.count_params():,} weights; train {len(train_set):,} images, "
        f"validation ({val_set.split}) {len(val_set):,}; run folder {run_dir}"
    )
    fresh = not done_rows
    try:
        with hold_run(run_dir):
            return _fit_holding(model, config, data, history, checkpointer, callbacks, stop, verbose, fresh)
    except RunBusy as err:
        raise ResumeError(str(err)) from err


def _fit_holding(
    model: keras.Model,
    config: TrainConfig,
    data: FitData,
    history: HistoryWriter,
    checkpointer: Checkpointer,
    callbacks: Sequence[keras.callbacks.Callback],
    stop: threading.Event | None,
    verbose: int | str,
    fresh: bool,
) -> Path:
    """``fit``'s work while it holds the run's lock (so the run reads as running exactly then)."""
    run_dir, train_set, val_set = config.run_dir, data.train, data.val
    stop = stop or threading.Event()
    first = len(history.rows)
    validation_steps = math.ceil(len(val_set) / config.batch_size)
    write_status(run_dir, "running", epochs=config.epochs)
    try:
        stopper = StopWhenAsked(stop, validation_steps)
        revalidate(model, data, config.batch_size, history, checkpointer, stopper, callbacks)
        model.fit(
            train_set.x,
            data.targets,
            batch_size=config.batch_size,
            epochs=config.epochs,
            initial_epoch=first,
            validation_data=(val_set.x, data.val_targets),
            class_weight=balanced_class_weights(train_set.y) if config.class_weights else None,
            callbacks=[
                stopper,
                history,
                checkpointer,
                *schedule_callbacks(config),
                epoch_printer(config, history, checkpointer),
                *callbacks,
            ],
            verbose=verbose,
        )
    except (TrainingStopped, KeyboardInterrupt):
        return stopped(config, history.rows, first, fresh)
    except BaseException as err:
        with contextlib.suppress(OSError):  # a full disk may refuse the status too
            write_status(run_dir, "failed", f"{type(err).__name__}: {err}")
        raise
    if stop.is_set() and len(history.rows) < config.epochs:  # stopped while validating: epoch kept
        return stopped(config, history.rows, first, fresh)
    write_status(run_dir, "finished", epoch_count(len(history.rows)))
    summary = checkpointer.card["training"]
    if checkpointer.best_epoch:
        print(
            f"done: best val_accuracy {summary['best_val_accuracy']:.4f} at epoch {summary['best_epoch']} "
            f"of {summary['epochs_run']}; {summary['duration_s'] / 60:.1f} min, "
            f"{summary['images_per_s']:.0f} images/s; {run_dir}"
        )
    return run_dir


def revalidate(
    model: keras.Model,
    data: FitData,
    batch_size: int,
    history: HistoryWriter,
    checkpointer: Checkpointer,
    stopper: StopWhenAsked,
    callbacks: Sequence[keras.callbacks.Callback],
) -> None:
    """Measure the validation a Stop cut short (NaN in the last row), before a resume trains on.

    The epoch's weights are ``model``'s (last.keras), so its score is what validating it then
    would have given, and it may still become best.keras. A Stop here ends the job with the run
    as it was (TrainingStopped).
    """
    row = history.rows[-1] if history.rows else None
    if row is None or not math.isnan(row["val_accuracy"]):
        return
    epoch = int(row["epoch"])
    print(f"epoch {epoch}'s validation was cut short by a Stop: validating it now")
    scores = model.evaluate(
        data.val.x,
        data.val_targets,
        batch_size=batch_size,
        callbacks=[stopper, *callbacks],
        verbose=0,
        return_dict=True,
    )
    if stopper.cut:
        raise TrainingStopped
    history.rows[-1] = {**row, "val_loss": scores["loss"], "val_accuracy": scores["accuracy"]}
    history.write()
    checkpointer.keep_if_best(epoch, float(scores["accuracy"]), model)


def stopped(config: TrainConfig, rows: Sequence[dict[str, float]], first: int, fresh: bool) -> Path:
    """Record a Stop; TrainingStopped when this job kept no epoch, saying what is left.

    A new run with no finished epoch holds only its config and status: its folder is removed,
    so stopped-empty runs don't pile up in the table and the name is free again.
    """
    run_dir = config.run_dir
    if len(rows) == first and fresh:
        for name in ("config.json", "status.json", "history.csv", LOCK_FILE):
            (run_dir / name).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            run_dir.rmdir()
        print(NOTHING_KEPT)
        raise TrainingStopped(NOTHING_KEPT)
    cut = bool(rows) and math.isnan(rows[-1]["val_accuracy"])
    write_status(run_dir, "stopped", stopped_message(len(rows), config.epochs, cut))
    if len(rows) == first:
        print(nothing_new(rows, config.epochs))
        raise TrainingStopped(nothing_new(rows, config.epochs))
    print(f"stopped after epoch {len(rows)}; continue with --resume {run_dir}")
    return run_dir


@contextlib.contextmanager
def data_parallel(batch_size: int, devices: Sequence[str] | None = None) -> Iterator[int]:
    """Build, compile and fit inside this to spread each batch over ``devices``; yields their number.

    ``devices`` defaults to ``keras.distribution.list_devices()`` (the GPUs, else the CPUs). With
    one device, or on a backend without data parallelism (torch), nothing changes and it yields 1.
    JAX shards a batch into equal parts, so there only as many devices are used as divide
    ``batch_size`` evenly (64 over 3 GPUs uses 2).
    """
    devices = list(keras.distribution.list_devices() if devices is None else devices)
    backend = keras.backend.backend()
    if backend == "jax":
        usable = max(n for n in range(1, len(devices) + 1) if batch_size % n == 0)
        if usable < len(devices):
            print(f"batch size {batch_size} splits evenly over {usable} of the {len(devices)} devices")
        devices = devices[:usable]
    if len(devices) < 2 or backend not in ("jax", "tensorflow"):
        yield 1
        return
    print(f"data-parallel over {len(devices)} devices: {', '.join(devices)}")
    if backend == "jax":
        with keras.distribution.DataParallel(devices=devices).scope():
            yield len(devices)
    else:
        import tensorflow as tf

        with tf.distribute.MirroredStrategy([f"/{device}" for device in devices]).scope():
            yield len(devices)


def even_split(dataset: Dataset, devices: int) -> Dataset:
    """``dataset`` less its last ``len % devices`` images when JAX must split every batch evenly.

    JAX shards each batch into equal parts, so with N devices every batch, the last one included,
    must hold a multiple of N images; dropping at most N - 1 images does that (``data_parallel``
    picks N so that it divides the batch size). TensorFlow's MirroredStrategy splits unevenly, so
    it keeps everything.
    """
    drop = len(dataset) % devices if keras.backend.backend() == "jax" else 0
    if not drop:
        return dataset
    print(f"{dataset.split}: left out the last {drop} image(s) so that {devices} devices get equal shares")
    keep = len(dataset) - drop
    return dataclasses.replace(
        dataset, x=dataset.x[:keep], y=dataset.y[:keep], sources=dataset.sources[:keep]
    )


def load_data(config: TrainConfig) -> tuple[Dataset, Dataset]:
    """The training and validation splits, with any loader workarounds printed."""
    train_set = load_split(config.data_dir, "train", limit_per_class=config.limit_per_class)
    val_set = load_split(config.data_dir, config.validation_split, limit_per_class=config.limit_per_class)
    for dataset in (train_set, val_set):
        report_data_issues(dataset)
    return train_set, val_set


def steps_per_epoch(config: TrainConfig, train_set: Dataset) -> int:
    """Optimizer steps in one epoch."""
    return math.ceil(len(train_set) / config.batch_size)


def write_config(config: TrainConfig) -> None:
    """Write (or, on resume, rewrite) the run's config.json."""
    with atomic_output(config.run_dir / "config.json") as tmp:
        tmp.write_text(json.dumps(config.to_dict(), indent=2) + "\n", encoding="utf-8")


def read_config(run_dir: Path) -> TrainConfig:
    """The TrainConfig a run folder was started with; ResumeError if it is missing or broken."""
    try:
        data = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
        config = TrainConfig.from_dict(data)
    except (OSError, ValueError, TypeError) as err:
        raise ResumeError(f"{run_dir} is not a readable run folder: {err}") from err
    if config.run_dir.resolve() != run_dir.resolve():
        # The folder was moved or renamed since it was made: keep writing where it is now.
        config = dataclasses.replace(config, runs_dir=run_dir.parent, run_name=run_dir.name)
    return config


def report_data_issues(dataset: Dataset) -> None:
    """Print what the loader had to work around, so it is visible before the run starts."""
    if dataset.note:
        print(f"{dataset.split}: {dataset.note}")
    if dataset.skipped:
        print(
            f"{dataset.split}: skipped {len(dataset.skipped)} unreadable image(s), e.g. {dataset.skipped[0]}"
        )
    if dataset.ignored:
        print(
            f"{dataset.split}: ignored {len(dataset.ignored)} file(s) that are not images, "
            f"e.g. {dataset.ignored[0]}"
        )


def learning_rate_for(
    config: TrainConfig, steps_per_epoch: int
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The optimizer's learning rate: a number, or a cosine decay (after any warm-up) over the run."""
    if config.schedule == "cosine":
        warmup = config.warmup_epochs * steps_per_epoch
        if not warmup:
            return keras.optimizers.schedules.CosineDecay(
                config.learning_rate, decay_steps=config.epochs * steps_per_epoch
            )
        return keras.optimizers.schedules.CosineDecay(
            0.0,
            decay_steps=(config.epochs - config.warmup_epochs) * steps_per_epoch,
            warmup_target=config.learning_rate,
            warmup_steps=warmup,
        )
    return config.learning_rate


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """Adam, or AdamW with decoupled weight decay, at the config's learning rate or schedule."""
    rate = learning_rate_for(config, steps_per_epoch)
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(rate, weight_decay=config.weight_decay)
    return keras.optimizers.Adam(rate)


def schedule_callbacks(config: TrainConfig) -> list[keras.callbacks.Callback]:
    """Callbacks that change the learning rate or stop early, as the config asks."""
    callbacks: list[keras.callbacks.Callback] = []
    if config.schedule == "plateau":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss",
                factor=PLATEAU_FACTOR,
                patience=PLATEAU_PATIENCE,
                min_lr=config.learning_rate * PLATEAU_MIN_FRACTION,
                verbose=1,
            )
        )
    if config.early_stopping_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy", mode="max", patience=config.early_stopping_patience, verbose=1
            )
        )
    return callbacks


def epoch_printer(
    config: TrainConfig, history: HistoryWriter, checkpointer: Checkpointer
) -> keras.callbacks.Callback:
    """Prints one line per epoch, readable in a log file where the progress bar is noise."""

    def report(epoch: int, logs: dict[str, Any]) -> None:
        row = history.rows[-1]
        best = "no validated epoch yet"  # a Stop cut the only epoch's validation
        if checkpointer.best_epoch:
            best = f"best {checkpointer.best_accuracy:.4f} @ {checkpointer.best_epoch}"
        print(
            f"epoch {row['epoch']}/{config.epochs}: loss {row['loss']:.4f} acc {row['accuracy']:.4f} "
            f"val_loss {row['val_loss']:.4f} val_acc {row['val_accuracy']:.4f} "
            f"({best}) "
            f"lr {row['lr']:.2g} {row['seconds']:.0f}s",
            flush=True,
        )

    return keras.callbacks.LambdaCallback(on_epoch_end=report)


def balanced_class_weights(labels: np.ndarray) -> dict[int, float]:
    """Weights inversely proportional to class frequency (FER2013 has 16x more happy than disgust)."""
    classes = np.arange(NUM_CLASSES)
    weights = compute_class_weight("balanced", classes=classes, y=labels)
    return dict(zip(classes.tolist(), weights.tolist(), strict=True))


def training_card(config: TrainConfig, data: FitData) -> dict[str, Any]:
    """The model card fields known before the first epoch; Checkpointer adds the results.

    ``target_shares`` is each class's share of what the run was fitted to (the mean target): the
    prior that training.export's ``--balance`` corrects, which for votes is not the label counts.
    """
    shares = data.targets.mean(axis=0)
    train = {
        **data.train.describe(),
        "target_shares": dict(zip(CLASS_NAMES, shares.round(5).tolist(), strict=True)),
    }
    return {
        **base_card(config.arch),
        "training": {
            "config": config.to_dict(),
            "labels": data.labels,
            "dataset": {"train": train, "validation": data.val.describe()},
            "keras_version": keras.version(),
            "backend": keras.backend.backend(),
        },
    }


@dataclass(frozen=True)
class ResumeRequest:
    """``--resume RUN_DIR [--epochs N]`` from the command line."""

    run_dir: Path
    epochs: int | None


def parse_args(argv: Sequence[str] | None = None) -> TrainConfig | ResumeRequest:
    """Command-line options -> a new run's TrainConfig (options left out keep its defaults) or a resume."""
    defaults = TrainConfig(data_dir=Path(), run_name="defaults")
    parser = argparse.ArgumentParser(
        prog="python -m training.train",
        description=__doc__.split("\n\n")[0],
        epilog="To continue a stopped run: python -m training.train --resume RUN_DIR [--epochs N]",
    )
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue this run folder")
    parser.add_argument(
        "--data", dest="data_dir", type=Path, help="FER2013 folder in the Kaggle layout, or fer2013.csv"
    )
    parser.add_argument("--run-name", help="folder name of this run under --runs-dir")
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="start from a named recipe (options given as well override its settings): "
        + "; ".join(f"{name}: {preset.title}" for name, preset in PRESETS.items()),
    )
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), help=f"default {defaults.arch}")
    parser.add_argument("--epochs", type=int, help=f"default {defaults.epochs}")
    parser.add_argument("--batch-size", type=int, help=f"default {defaults.batch_size}")
    parser.add_argument("--lr", dest="learning_rate", type=float, help=f"default {defaults.learning_rate}")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, help=f"default {defaults.optimizer}")
    parser.add_argument(
        "--weight-decay", type=float, help=f"AdamW's decoupled weight decay; default {defaults.weight_decay}"
    )
    parser.add_argument(
        "--warmup-epochs", type=int, help=f"cosine warm-up from 0; default {defaults.warmup_epochs}"
    )
    parser.add_argument(
        "--augment", action=argparse.BooleanOptionalAction, help=f"default {defaults.augment}"
    )
    parser.add_argument(
        "--random-erasing",
        type=float,
        help=f"erase a patch in up to this share of images; default {defaults.random_erasing}",
    )
    parser.add_argument(
        "--lighting", type=float, help=f"random brightness/contrast strength; default {defaults.lighting}"
    )
    parser.add_argument(
        "--mixed-precision",
        action=argparse.BooleanOptionalAction,
        help=f"bfloat16 where the hardware is fast at it; default {defaults.mixed_precision}",
    )
    parser.add_argument(
        "--class-weights",
        action=argparse.BooleanOptionalAction,
        help=f"weight classes by inverse frequency; default {defaults.class_weights}",
    )
    parser.add_argument("--label-smoothing", type=float, help=f"default {defaults.label_smoothing}")
    parser.add_argument("--schedule", choices=SCHEDULES, help=f"default {defaults.schedule}")
    parser.add_argument(
        "--patience",
        dest="early_stopping_patience",
        type=int,
        help=f"early stopping patience in epochs, 0 = off; default {defaults.early_stopping_patience}",
    )
    parser.add_argument("--limit-per-class", type=int, help="use only the first K images of each class")
    parser.add_argument(
        "--validation",
        dest="validation_split",
        choices=VALIDATION_SPLITS,
        help="validate on PublicTest (default) or the whole test folder, PrivateTest included",
    )
    parser.add_argument("--runs-dir", type=Path, help=f"default {defaults.runs_dir}")
    parser.add_argument("--seed", type=int, help=f"default {defaults.seed}")
    parser.add_argument(
        "--teacher",
        type=Path,
        metavar="MODEL",
        help="distil: fit to this saved model's probabilities mixed with the labels (training.distill)",
    )
    parser.add_argument(
        "--teacher-weight",
        type=float,
        help=f"the teacher's share of each target; default {defaults.teacher_weight}",
    )
    parser.add_argument(
        "--labels",
        choices=LABEL_SOURCES,
        help="learn from FER2013's labels, the FER+ annotators' votes, or a blend of both; "
        f"default {defaults.labels}",
    )
    parser.add_argument(
        "--votes",
        type=Path,
        metavar="CSV",
        help=f"the FER+ votes file; default ${VOTES_ENV}, else {VOTES_FILE_NAME} in or beside --data",
    )
    parser.add_argument(
        "--votes-weight",
        type=float,
        help=f"the votes' share of each target with --labels blend; default {defaults.votes_weight}",
    )
    parser.add_argument(
        "--init",
        dest="init_from",
        type=Path,
        metavar="MODEL",
        help="start from this saved model's weights (fine-tune): a run's best.keras, or an exported "
        "ensemble such as model/emotion_cnn.keras with --init-member",
    )
    parser.add_argument(
        "--init-member", type=int, help="which member of an exported ensemble to start from; default 1"
    )
    given = {name: value for name, value in vars(parser.parse_args(argv)).items() if value is not None}
    run_dir = given.pop("resume", None)
    if run_dir is not None:
        others = sorted(set(given) - {"epochs"})
        if others:
            parser.error(f"--resume takes only --epochs; the run's config.json fixes {', '.join(others)}")
        return ResumeRequest(run_dir, given.get("epochs"))
    required = (("--data", "data_dir"), ("--run-name", "run_name"))
    missing = [flag for flag, name in required if name not in given]
    if missing:
        parser.error(f"a new run needs {' and '.join(missing)}")
    preset = given.pop("preset", None)
    try:
        return TrainConfig.from_preset(preset, **given) if preset else TrainConfig(**given)
    except ValueError as err:
        parser.error(str(err))


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: exit status 0 on success, 2 for a bad dataset, an existing or unresumable run."""
    request = parse_args(argv)
    # Line-buffer so a log file (nohup ... > run.log) shows each epoch as it ends, and use the
    # progress bar only on a terminal: redirected, it is megabytes of redraws.
    sys.stdout.reconfigure(line_buffering=True)
    verbose = 1 if sys.stdout.isatty() else 2
    try:
        if isinstance(request, ResumeRequest):
            resume(request.run_dir, request.epochs, verbose=verbose)
        else:
            train(request, verbose=verbose)
    except (DatasetError, FileExistsError, ResumeError, TeacherError, VotesError, WarmStartError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except TrainingStopped as err:
        print(str(err), file=sys.stderr)
        return 1
    except OSError as err:
        print(f"error: {disk_message(err)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
