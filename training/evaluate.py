"""Score a saved model on FER2013 test splits or on any folder of labelled faces.

    python -m training.evaluate --model runs/classic/best.keras --data /root/data/fer2013 --card
    python -m training.evaluate --model model/emotion_cnn.keras --split path/to/folder --out report/

Prints accuracy, macro-F1, balanced accuracy, a per-class table and the confusion matrix (rows =
true class, columns = predicted) for each split; ``--json`` prints one JSON object instead, and
``--card`` stores the results under ``evaluation`` in the model card beside the model, keeping
what the trainer wrote there. PrivateTest is the score to report: the trainer never saw it.

``--split`` is a FER2013 split of ``--data`` (private_test, public_test, test, train, or all) or a
folder or ``.zip``: a dataset root with test/<class>/, or one split's <class>/ folders (``--data``
is then not needed). ``--out DIR`` writes, per split, ``<split>_per_class.csv`` (the Analysis page's CSV) and
``<split>_confusion.png``. Metrics and tables come from :mod:`training.analysis`, shared with the
Analysis page, so the page and this command always print the same numbers.

Where the images have FER+ votes (FER2013 in the Kaggle layout; the votes file is found as
training finds it, or given with ``--votes``), each split is also scored against the annotators'
majority (:mod:`training.ground_truth`): printed after the label's report, under
``ferplus_majority`` in the JSON and the card, and as ``<split>_ferplus_*`` files with ``--out``.
``--no-votes`` skips it; images without votes (a CSV, a zip) get a one-line note instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.classifier import EmotionClassifier, ModelError
from app.emotions import CLASS_NAMES
from app.model_card import ModelCardError, base_card, read_card, write_card
from training.analysis import (
    Predict,
    confusion_png,
    file_stem,
    load_folder,
    load_zip,
    per_class_csv,
    predict_dataset,
    score,
)
from training.data import SPLITS, Dataset, DatasetError, load_split
from training.ground_truth import MAJORITY_KEY, both_truths, cached_votes, majority_line, with_votes
from training.votes import Votes, VotesError, find_votes

__all__ = ["ALL_SPLITS", "evaluate", "main", "score"]  # score lives in training.analysis

#: What ``--split all`` evaluates: the report split first.
ALL_SPLITS = ("private_test", "public_test", "test")


def load(data_dir: str | Path | None, split: str, *, limit_per_class: int | None = None) -> Dataset:
    """``split`` of the dataset at ``data_dir``, or the folder ``split`` names when it is not a split name."""
    if split in SPLITS:
        if data_dir is None:
            raise DatasetError(f"split {split} needs --data (the FER2013 folder or fer2013.csv)")
        return load_split(data_dir, split, limit_per_class=limit_per_class)
    path = Path(split)
    if path.is_file() and path.suffix.lower() == ".zip":
        return load_zip(path, path.name, limit_per_class=limit_per_class)
    if not path.exists():
        raise DatasetError(f"{split!r} is neither a split ({', '.join(SPLITS)}, all) nor an existing folder")
    return load_folder(path, limit_per_class=limit_per_class)


def evaluate(
    predict: Predict,
    data_dir: str | Path | None,
    splits: Sequence[str],
    *,
    limit_per_class: int | None = None,
    votes: Votes | None = None,
    notes: list[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Score ``predict`` (crops -> probabilities) on each of ``splits``; split name or folder -> score.

    With ``votes``, a split whose images have them is scored against the annotators' majority
    too (under ``ferplus_majority``); one that has none gets a line in ``notes``.
    """
    results = {}
    for split in splits:
        dataset = load(data_dir, split, limit_per_class=limit_per_class)
        evaluation = predict_dataset(predict, dataset)
        if votes is not None:
            evaluation, note = with_votes(evaluation, votes, dataset.root)
            if note and notes is not None:
                notes.append(note)
        results[split] = both_truths(evaluation)
    return results


def votes_for(args: argparse.Namespace) -> Votes | None:
    """The votes to score against: ``--votes``, else found beside the data as training finds them
    (``$FERPLUS_VOTES``, the dataset folder, the shipped copy); None with ``--no-votes``."""
    if args.no_votes:
        return None
    if args.votes is not None:
        return cached_votes(find_votes(args.votes, Path(".")))
    place = args.data if args.data is not None else Path(args.split)
    return cached_votes(find_votes(None, place if place.is_dir() else place.parent))


def write_reports(results: dict[str, dict[str, Any]], out_dir: Path) -> list[str]:
    """Per split, the per-class CSV and the confusion-matrix PNG in ``out_dir``; the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for split, both in results.items():
        truths = [("", both, split)]
        if MAJORITY_KEY in both:
            truths.append(("_ferplus", both[MAJORITY_KEY], f"{split}, FER+ annotators' majority"))
        for suffix, result, title in truths:
            stem = file_stem(split) + suffix
            table = out_dir / f"{stem}_per_class.csv"
            table.write_text(per_class_csv(result), encoding="utf-8")
            picture = out_dir / f"{stem}_confusion.png"
            picture.write_bytes(confusion_png(result, title=f"Confusion matrix: {title}"))
            written += [str(table), str(picture)]
    return written


def format_score(split: str, result: dict[str, Any]) -> str:
    """A plain-text report of one split for the terminal; then the annotators' majority's, if any."""
    text = _format_one(f"== {split}: {result['n']} images", result)
    if MAJORITY_KEY in result:
        against = result[MAJORITY_KEY]
        heading = f"== {split}, against the FER+ annotators' majority: {majority_line(against)}"
        text += "\n\n" + _format_one(heading, against)
    return text


def _format_one(heading: str, result: dict[str, Any]) -> str:
    width = max(map(len, CLASS_NAMES))
    lines = [
        heading,
        f"accuracy {result['accuracy']:.4f}  macro-F1 {result['macro_f1']:.4f}  "
        f"balanced accuracy {result['balanced_accuracy']:.4f}",
        f"{'class':<{width}}  precision  recall      f1  support",
    ]
    for name, row in result["per_class"].items():
        lines.append(
            f"{name:<{width}}  {row['precision']:9.3f}  {row['recall']:6.3f}  {row['f1']:6.3f}"
            f"  {row['support']:7d}"
        )
    lines.append("confusion (rows = true, columns = predicted):")
    lines.append(" " * width + "".join(f"{name[:7]:>8}" for name in CLASS_NAMES))
    for name, counts in zip(CLASS_NAMES, result["confusion"], strict=True):
        lines.append(f"{name:<{width}}" + "".join(f"{count:8d}" for count in counts))
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options of the evaluator."""
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="saved .keras model")
    parser.add_argument(
        "--data", type=Path, help="FER2013 folder in the Kaggle layout, or fer2013.csv (for split names)"
    )
    parser.add_argument(
        "--split",
        default="all",
        help=f"{', '.join(SPLITS)}, or 'all' (default: {', '.join(ALL_SPLITS)}); or a folder (or .zip of "
        "one) with test/<class>/ or <class>/ subfolders of images",
    )
    parser.add_argument("--limit-per-class", type=int, help="score only the first K images of each class")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument(
        "--card", action="store_true", help="store the results in the model card beside the model"
    )
    parser.add_argument("--out", type=Path, help="write <split>_per_class.csv and <split>_confusion.png here")
    parser.add_argument(
        "--votes",
        type=Path,
        help="FER+ votes file to score against the annotators' majority too (default: found as training "
        "finds it: $FERPLUS_VOTES, ferplus_votes.csv in or beside the data, else the shipped copy)",
    )
    parser.add_argument("--no-votes", action="store_true", help="score against the FER2013 labels only")
    args = parser.parse_args(argv)
    if args.votes is not None and args.no_votes:
        parser.error("--votes and --no-votes contradict each other")
    if args.card and args.split not in (*SPLITS, "all"):
        parser.error("--card stores FER2013 splits only; a folder's results would not mean much in a card")
    if args.split in (*SPLITS, "all") and args.data is None:
        parser.error(f"--split {args.split} needs --data (the FER2013 folder or fer2013.csv)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: exit status 0 on success, 2 when the model or dataset cannot be used."""
    args = parse_args(argv)
    if not args.model.is_file():
        print(f"error: no model file at {args.model}", file=sys.stderr)
        return 2
    splits = ALL_SPLITS if args.split == "all" else (args.split,)
    try:
        classifier = EmotionClassifier.load(args.model)
        # Read the card first: a broken one should stop us before the slow part, not after.
        card = (read_card(args.model) or base_card(classifier.model.name)) if args.card else None
        votes = votes_for(args)
        notes: list[str] = []
        results = evaluate(
            classifier, args.data, splits, limit_per_class=args.limit_per_class, votes=votes, notes=notes
        )
    except VotesError as err:
        print(f"error: {err} (--no-votes scores against the labels only)", file=sys.stderr)
        return 2
    except (DatasetError, ModelCardError, ModelError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    card_file = None
    if card is not None:
        card.setdefault("evaluation", {}).update(results)  # other splits and the training record stay
        card_file = str(write_card(args.model, card))
    files = write_reports(results, args.out) if args.out else []
    if args.json:
        report = {
            "model": str(args.model),
            "data": str(args.data) if args.data else None,
            "votes": str(votes.source) if votes else None,
            "notes": notes,
            "results": results,
            "card": card_file,
            "files": files,
        }
        print(json.dumps(report))
    else:
        print("\n\n".join(format_score(split, result) for split, result in results.items()))
        for note in notes:
            print(f"\nnote: {note}")
        if card_file:
            print(f"\nresults stored in {card_file}")
        for file in files:
            print(f"wrote {file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
