"""Turn trained models into the one file the app serves: test-time augmentation and ensembles inside.

    python -m training.export runs/resnet-cpu/best.keras [OTHER.keras ...] --out model/emotion_cnn.keras

The saved model averages the softmax of every member model over the face and its mirror image
(FER2013 faces are symmetric enough that the mirror is another honest view: about +1.5 points of
accuracy for one extra pass). Doing this *inside* the saved model, rather than in the app, means
the pages, the CLIs, ``training.evaluate`` and anyone loading the file with
``keras.saving.load_model`` all get the same answers. The mirror is a fixed ``Dense`` layer that
multiplies each pixel row by the exchange matrix (exact: one 1.0 per row), so the file keeps to
built-in layers and loads without this project. The card beside it records the members' cards.
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
from keras import layers

from app.classifier import EmotionClassifier, ModelError
from app.emotions import IMAGE_SIZE, INPUT_SHAPE
from app.model_card import ModelCardError, atomic_output, base_card, read_card, write_card


def mirror_layers() -> list[keras.layers.Layer]:
    """Built-in layers that flip a ``(N, 48, 48, 1)`` batch left to right, exactly."""
    exchange = np.eye(IMAGE_SIZE, dtype=np.float32)[::-1]
    flip = layers.Dense(IMAGE_SIZE, use_bias=False, trainable=False, name="mirror")
    flip.build((None, IMAGE_SIZE, IMAGE_SIZE))
    flip.set_weights([exchange])
    return [
        layers.Reshape((IMAGE_SIZE, IMAGE_SIZE), name="rows"),
        flip,
        layers.Reshape(INPUT_SHAPE, name="mirrored"),
    ]


def averaged_model(members: Sequence[keras.Model], *, mirror: bool = True, name: str = "") -> keras.Model:
    """One model: the mean softmax of ``members`` (each also on the mirror image if ``mirror``)."""
    pixels = keras.Input(INPUT_SHAPE, dtype="float32", name="pixels")
    views = [pixels]
    if mirror:
        mirrored = pixels
        for layer in mirror_layers():
            mirrored = layer(mirrored)
        views.append(mirrored)
    outputs = [member(view) for member in members for view in views]
    probabilities = outputs[0] if len(outputs) == 1 else layers.Average(name="probabilities")(outputs)
    kinds = [
        member.name.split("_", 2)[-1] if member.name.startswith("member_") else member.name
        for member in members
    ]
    label = name or "_".join(kinds) + ("_mirrored" if mirror else "")
    return keras.Model(pixels, probabilities, name=label)


def load_members(paths: Sequence[Path]) -> list[keras.Model]:
    """The member models, renamed ``member_1``… so that two of one architecture can live in one graph."""
    members = []
    for index, path in enumerate(paths, start=1):
        model = EmotionClassifier.load(path).model  # checks the contract, clear errors
        config = model.get_config()
        config["name"] = f"member_{index}_{model.name}"
        renamed = keras.Model.from_config(config)
        renamed.set_weights(model.get_weights())
        members.append(renamed)
    return members


def export_card(paths: Sequence[Path], model: keras.Model, mirror: bool) -> dict[str, Any]:
    """The card of the exported file: what it averages, and each member's own card."""
    cards = []
    for path in paths:
        try:
            cards.append({"file": str(path), **(read_card(path) or {})})
        except ModelCardError:
            cards.append({"file": str(path)})
    architectures = {card.get("architecture", "?") for card in cards}
    card = base_card(architectures.pop() if len(architectures) == 1 else "ensemble")
    card["export"] = {"name": model.name, "mirror_average": mirror, "members": cards}
    first = cards[0]
    if "training" in first:  # the Analysis page and runs table read the (first) member's training
        card["training"] = first["training"]
    return card


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.export", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "models", nargs="+", type=Path, help="trained .keras models (e.g. a run's best.keras)"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="the .keras file to write (and its .json card)"
    )
    parser.add_argument("--no-mirror", action="store_true", help="do not average with the mirror image")
    args = parser.parse_args(argv)
    if args.out.suffix != ".keras":
        parser.error("--out must end in .keras")
    try:
        members = load_members(args.models)
    except ModelError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    model = averaged_model(members, mirror=not args.no_mirror)
    EmotionClassifier(model)  # the result keeps the contract too
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(args.out) as tmp:
        model.save(tmp)
    card = export_card(args.models, model, not args.no_mirror)
    write_card(args.out, card)
    print(
        json.dumps(
            {
                "out": str(args.out),
                "model": model.name,
                "members": len(members),
                "weights": model.count_params(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
