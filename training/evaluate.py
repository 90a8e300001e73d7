"""Score a saved model on FER2013 test splits.

    python -m training.evaluate --model runs/classic/best.keras --data /root/data/fer2013 --card

Prints accuracy, macro-F1, balanced accuracy, a per-class table and the confusion matrix (rows =
true class, columns = predicted) for each split; ``--json`` prints one JSON object instead, and
``--card`` stores the results under ``evaluation`` in the model card beside the model, keeping
what the trainer wrote there. PrivateTest is the score to report: the trainer never saw it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
from sklearn import metrics

from app.emotions import CLASS_NAMES, NUM_CLASSES
from app.model_card import ModelCardError, base_card, read_card, write_card
from training.data import SPLITS, DatasetError, load_split

#: What ``--split all`` evaluates: the report split first.
ALL_SPLITS = ("private_test", "public_test", "test")
PREDICT_BATCH = 512


def score(y_true: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
    """The card's ``evaluation`` entry for one split, from true labels and predicted probabilities."""
    labels = list(range(NUM_CLASSES))
    y_pred = probabilities.argmax(axis=1)
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return {
        "accuracy": float(metrics.accuracy_score(y_true, y_pred)),
        "macro_f1": float(metrics.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "balanced_accuracy": float(metrics.balanced_accuracy_score(y_true, y_pred)),
        "n": len(y_true),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(CLASS_NAMES, precision, recall, f1, support, strict=True)
        },
        "confusion": metrics.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def evaluate(
    model: keras.Model, data_dir: str | Path, splits: Sequence[str], *, limit_per_class: int | None = None
) -> dict[str, dict[str, Any]]:
    """Score ``model`` on each of ``splits`` of the dataset at ``data_dir``; split name -> score."""
    results = {}
    for split in splits:
        dataset = load_split(data_dir, split, limit_per_class=limit_per_class)
        probabilities = model.predict(dataset.x, batch_size=PREDICT_BATCH, verbose=0)
        results[split] = score(dataset.y, probabilities)
    return results


def format_score(split: str, result: dict[str, Any]) -> str:
    """A plain-text report of one split for the terminal."""
    width = max(map(len, CLASS_NAMES))
    lines = [
        f"== {split}: {result['n']} images",
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
        "--data", type=Path, required=True, help="FER2013 folder in the Kaggle layout, or fer2013.csv"
    )
    parser.add_argument(
        "--split", choices=(*SPLITS, "all"), default="all", help=f"'all' (default) = {', '.join(ALL_SPLITS)}"
    )
    parser.add_argument("--limit-per-class", type=int, help="score only the first K images of each class")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument(
        "--card", action="store_true", help="store the results in the model card beside the model"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: exit status 0 on success, 2 when the model or dataset cannot be used."""
    args = parse_args(argv)
    if not args.model.is_file():
        print(f"error: no model file at {args.model}", file=sys.stderr)
        return 2
    model = keras.saving.load_model(args.model)
    splits = ALL_SPLITS if args.split == "all" else (args.split,)
    try:
        # Read the card first: a broken one should stop us before the slow part, not after.
        card = (read_card(args.model) or base_card(model.name)) if args.card else None
        results = evaluate(model, args.data, splits, limit_per_class=args.limit_per_class)
    except (DatasetError, ModelCardError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    card_file = None
    if card is not None:
        card.setdefault("evaluation", {}).update(results)  # other splits and the training record stay
        card_file = str(write_card(args.model, card))
    if args.json:
        report = {"model": str(args.model), "data": str(args.data), "results": results, "card": card_file}
        print(json.dumps(report))
    else:
        print("\n\n".join(format_score(split, result) for split, result in results.items()))
        if card_file:
            print(f"\nresults stored in {card_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
