"""Turn trained models into the one file the app serves: test-time augmentation and ensembles inside.

    python -m training.export runs/resnet-cpu/best.keras [OTHER.keras ...] --out model/emotion_cnn.keras

The saved model averages the softmax of every member model over the face and its mirror image
(FER2013 faces are symmetric enough that the mirror is another honest view: about +1.5 points of
accuracy for one extra pass). Doing this *inside* the saved model, rather than in the app, means
the pages, the CLIs, ``training.evaluate`` and anyone loading the file with
``keras.saving.load_model`` all get the same answers. The mirror is a fixed ``Dense`` layer that
multiplies each pixel row by the exchange matrix (exact: one 1.0 per row), so the file keeps to
built-in layers and loads without this project. The card beside it records the members' cards,
and the LiteRT file derived from it (``<name>.<hash>.tflite``, app.light_runtime) is what the
pages serve it with; ship both.
Each member is stripped of its training-only augmentation layers and has its batch normalisations
folded into its convolutions on the way (:func:`serving_model`).

``--balance`` corrects for FER2013's class imbalance (disgust is 1.5 % of the training images, happy
25 %): every member's logits get ``-tau * log(class share in training)`` added (logit adjustment,
Menon et al. 2021) inside its softmax layer, so rare expressions are no longer drowned by the prior
the model learnt. ``--balance auto --data DIR`` picks ``tau`` on PublicTest: the best macro-F1 that
costs at most half a point of accuracy (for the shipped pair: tau 0.5; PublicTest macro-F1
0.572 → 0.599, disgust recall 0.18 → 0.50, accuracy unchanged).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import layers

from app.classifier import EmotionClassifier, ModelError
from app.emotions import CLASS_NAMES, IMAGE_SIZE, INPUT_SHAPE, NUM_CLASSES
from app.light_runtime import DeriveError, derive
from app.model_card import ModelCardError, atomic_output, base_card, read_card, write_card
from model.architectures import augmentation_layers
from training.analysis import predict_dataset, score
from training.data import Dataset, DatasetError, load_split
from training.votes import NO_MAJORITY, VotesError, find_votes, majority, match, read_votes

#: The ``tau`` values ``--balance auto`` tries.
BALANCE_GRID = tuple(float(tau) for tau in np.arange(0.0, 1.51, 0.125))
#: ``--balance auto`` gives up at most this much PublicTest accuracy for a better macro-F1.
BALANCE_MAX_ACCURACY_LOSS = 0.005
#: The split ``--balance auto`` tunes on (the protocol: tune on PublicTest, report on PrivateTest).
BALANCE_SPLIT = "public_test"


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
    """One model: the mean softmax of ``members`` (each also on the mirror image if ``mirror``).

    The face and its mirror go through each member as one batch of 2N, not as two calls: for one
    face most of a member's time is the fixed cost of a call, so this saved about 13 % of the
    pair's time per face.
    """
    pixels = keras.Input(INPUT_SHAPE, dtype="float32", name="pixels")
    views = [pixels]
    if mirror:
        mirrored = pixels
        for layer in mirror_layers():
            mirrored = layer(mirrored)
        views.append(mirrored)
    batch = views[0] if len(views) == 1 else layers.Concatenate(axis=0, name="views")(views)
    outputs = [member(batch) for member in members]
    probabilities = outputs[0] if len(outputs) == 1 else layers.Average(name="members")(outputs)
    if len(views) > 1:  # rows [face 1..N, mirror 1..N]: the mean of each face's views
        per_view = keras.ops.reshape(probabilities, (len(views), -1, NUM_CLASSES))
        probabilities = keras.ops.mean(per_view, axis=0)
    kinds = [
        member.name.split("_", 2)[-1] if member.name.startswith("member_") else member.name
        for member in members
    ]
    label = name or "_".join(kinds) + ("_mirrored" if mirror else "")
    return keras.Model(pixels, probabilities, name=label)


def class_shares(card: dict[str, Any] | None) -> np.ndarray:
    """Each class's share of the training images, from a member's card (CLASS_NAMES order)."""
    try:
        train = card["training"]["dataset"]["train"]  # type: ignore[index]
        # What the member was fitted to: its mean target (FER+ votes differ from the label counts).
        counts = train.get("target_shares") or train["class_counts"]
        shares = np.array([counts[name] for name in CLASS_NAMES], dtype=np.float64)
    except (KeyError, TypeError) as err:
        raise ModelError("--balance needs the training class counts from the first model's card") from err
    if (shares <= 0).any():
        raise ModelError("--balance needs every class in the training set")
    return shares / shares.sum()


def balance_shift(shares: np.ndarray, tau: float) -> np.ndarray:
    """What logit adjustment adds to each class's logit: ``-tau * log(share)``."""
    return -tau * np.log(shares)


def balance(member: keras.Model, shift: np.ndarray) -> None:
    """Add ``shift`` to ``member``'s logits, in the bias of its softmax layer (in place)."""
    head = member.layers[-1]
    config = head.get_config()
    if (
        not isinstance(head, layers.Dense)
        or config.get("activation") != "softmax"
        or not config.get("use_bias")
    ):
        raise ModelError(
            f"{member.name} does not end in a Dense softmax layer with a bias; it cannot be balanced"
        )
    kernel, bias = head.get_weights()
    head.set_weights([kernel, bias + shift.astype(bias.dtype)])


def tune_balance(
    members: Sequence[keras.Model],
    dataset: Dataset,
    shares: np.ndarray,
    *,
    mirror: bool = True,
    truth: np.ndarray | None = None,
) -> tuple[float, list[dict[str, float]]]:
    """The ``tau`` to balance with, chosen on ``dataset``, and the score of every ``tau`` tried.

    The members' softmax is computed once; a shift of the logits is then exact arithmetic on it
    (``softmax(z + b) = p * exp(b) / sum``), so the grid costs no more model passes. ``truth`` is
    what to score against (default the labels); ``NO_MAJORITY`` entries are left out, so members
    trained on FER+ votes are tuned against the annotators' majority they learnt.
    """
    truth = dataset.y if truth is None else truth
    scored = truth != NO_MAJORITY
    views = [lambda x: x, lambda x: x[:, :, ::-1]] if mirror else [lambda x: x]
    classifiers = [EmotionClassifier(member) for member in members]
    outputs = [
        predict_dataset(lambda x, c=classifier, v=view: c(v(x)), dataset).probabilities
        for classifier in classifiers
        for view in views
    ]
    tried = []
    for tau in BALANCE_GRID:
        weights = np.exp(balance_shift(shares, tau))
        adjusted = [p * weights / (p * weights).sum(axis=1, keepdims=True) for p in outputs]
        result = score(truth[scored], np.mean(adjusted, axis=0)[scored])
        tried.append({"tau": tau, "accuracy": result["accuracy"], "macro_f1": result["macro_f1"]})
    floor = tried[0]["accuracy"] - BALANCE_MAX_ACCURACY_LOSS
    best = max((row for row in tried if row["accuracy"] >= floor), key=lambda row: row["macro_f1"])
    return best["tau"], tried


def load_members(paths: Sequence[Path]) -> list[keras.Model]:
    """The member models, renamed ``member_1``… so that two of one architecture can live in one graph,
    as served (:func:`serving_model`)."""
    members = []
    for index, path in enumerate(paths, start=1):
        model = serving_model(EmotionClassifier.load(path).model)  # checks the contract, clear errors
        config = model.get_config()
        config["name"] = f"member_{index}_{model.name}"
        renamed = keras.Model.from_config(config)
        renamed.set_weights(model.get_weights())
        members.append(renamed)
    return members


def serving_model(model: keras.Model) -> keras.Model:
    """The model as the app serves it: training-only layers cut out, batch normalisations folded.

    - Keras 3's random augmentation layers default to *training* when a model is simply called:
      ``model(x)`` (``predict`` and the app pass ``training=False``). A file that keeps them
      answers such an outside check with randomly shifted and zoomed faces: the model shipped
      before this had its probabilities move by up to 0.12 between two calls on the same faces.
    - At inference a batch normalisation is a fixed per-channel scale and shift; folded into the
      kernel and bias of the linear convolution before it, it costs nothing (about 15 % of a
      ``resnet`` member's time on a CPU).

    The model is rebuilt from its config without those layers, so it keeps to built-in layers and
    gives ``predict``'s answers up to float rounding.
    """
    config = model.get_config()
    entries = {layer["name"]: layer for layer in config["layers"]}
    consumers: dict[str, int] = {}
    for layer in config["layers"]:
        for source in _sources(layer["inbound_nodes"]):
            consumers[source] = consumers.get(source, 0) + 1
    augmenting = {type(layer).__name__ for layer in augmentation_layers(erasing=1.0, lighting=0.1)}
    cut: dict[str, str] = {}  # a layer cut out → the layer whose output stands in for its output
    folds: dict[str, str] = {}  # a batch normalisation → the convolution it is folded into
    for layer in config["layers"]:
        sources = _sources(layer["inbound_nodes"])
        if len(sources) != 1:
            continue
        source = entries[sources[0]]
        if layer["class_name"] in augmenting:
            cut[layer["name"]] = source["name"]
        elif (
            layer["class_name"] == "BatchNormalization"
            and layer["config"]["axis"] in (-1, 3)
            and source["class_name"] == "Conv2D"
            and source["config"]["activation"] == "linear"
            and consumers[source["name"]] == 1
        ):
            cut[layer["name"]] = folds[layer["name"]] = source["name"]
    if not cut:
        return model

    def stand_in(name: str) -> str:
        while name in cut:  # augmentation layers come in a chain
            name = cut[name]
        return name

    for conv_name in folds.values():
        entries[conv_name]["config"]["use_bias"] = True
    config["layers"] = [_rewired(layer, stand_in) for layer in config["layers"] if layer["name"] not in cut]
    config["output_layers"] = _rewired(config["output_layers"], stand_in)
    served = keras.Model.from_config(config)
    for norm_name, conv_name in folds.items():
        norm, conv = model.get_layer(norm_name), model.get_layer(conv_name)
        gamma, beta, mean, variance = (np.asarray(weight) for weight in norm.get_weights())
        scale = gamma / np.sqrt(variance + norm.epsilon)
        kernel, *bias = conv.get_weights()
        shift = beta - mean * scale + (bias[0] * scale if bias else 0.0)
        served.get_layer(conv_name).set_weights([kernel * scale, shift])
    for layer in model.layers:
        if layer.weights and layer.name not in cut and layer.name not in folds.values():
            served.get_layer(layer.name).set_weights(layer.get_weights())
    return served


def _sources(nodes: Any) -> list[str]:
    """The names of the layers whose outputs a layer's serialised inbound nodes take."""
    if isinstance(nodes, dict):
        history = (
            nodes.get("config", {}).get("keras_history")
            if nodes.get("class_name") == "__keras_tensor__"
            else None
        )
        return [history[0]] if history else [name for value in nodes.values() for name in _sources(value)]
    if isinstance(nodes, list | tuple):
        return [name for value in nodes for name in _sources(value)]
    return []


def _rewired(node: Any, stand_in: Callable[[str], str]) -> Any:
    """A serialised graph piece with every reference to a layer sent to its ``stand_in``."""
    if isinstance(node, dict):
        if node.get("class_name") == "__keras_tensor__":
            history = node["config"]["keras_history"]
            config = {**node["config"], "keras_history": [stand_in(history[0]), *history[1:]]}
            return {**node, "config": config}
        return {key: _rewired(value, stand_in) for key, value in node.items()}
    if isinstance(node, list | tuple):
        if len(node) == 3 and isinstance(node[0], str):  # output_layers: [name, node, tensor]
            return [stand_in(node[0]), *node[1:]]
        return [_rewired(value, stand_in) for value in node]
    return node


def export_card(
    paths: Sequence[Path], model: keras.Model, mirror: bool, balanced: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The card of the exported file: what it averages, how it is balanced, each member's own card."""
    cards = []
    for path in paths:
        try:
            cards.append({"file": str(path), **(read_card(path) or {})})
        except ModelCardError:
            cards.append({"file": str(path)})
    architectures = {card.get("architecture", "?") for card in cards}
    card = base_card(architectures.pop() if len(architectures) == 1 else "ensemble")
    card["export"] = {"name": model.name, "mirror_average": mirror, "members": cards}
    if balanced is not None:
        card["export"]["balance"] = balanced
    first = cards[0]
    if "training" in first:  # the Analysis page and runs table read the (first) member's training
        card["training"] = first["training"]
    return card


def balance_arg(value: str) -> float | str:
    """``--balance``: a tau of 0 or more, or ``auto``."""
    if value == "auto":
        return value
    try:
        tau = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {value!r}") from None
    if not tau >= 0:
        raise argparse.ArgumentTypeError("tau must be 0 or more")
    return tau


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.export", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "models", nargs="+", type=Path, help="trained .keras models (e.g. a run's best.keras)"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="the .keras file to write (and its .json card)"
    )
    parser.add_argument("--no-mirror", action="store_true", help="do not average with the mirror image")
    parser.add_argument(
        "--balance",
        type=balance_arg,
        metavar="TAU|auto",
        help="add -TAU*log(class share) to each member's logits; auto picks TAU on PublicTest (needs --data)",
    )
    parser.add_argument("--data", type=Path, help="FER2013 folder, for --balance auto")
    args = parser.parse_args(argv)
    if args.out.suffix != ".keras":
        parser.error("--out must end in .keras")
    if args.balance == "auto" and args.data is None:
        parser.error("--balance auto needs --data (the FER2013 folder, tuned on its PublicTest)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    mirror = not args.no_mirror
    try:
        members = load_members(args.models)
        balanced = None
        if args.balance is not None:
            balanced = balance_members(members, args.models[0], args.balance, args.data, mirror)
    except (ModelError, ModelCardError, DatasetError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    model = averaged_model(members, mirror=mirror)
    EmotionClassifier(model)  # the result keeps the contract too
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(args.out) as tmp:
        model.save(tmp)
    card = export_card(args.models, model, mirror, balanced)
    write_card(args.out, card)
    try:  # what the pages serve it with (app.light_runtime); without it they fall back to Keras
        light = str(derive(args.out))
    except (ModelError, DeriveError) as err:
        print(f"warning: no LiteRT file, the app serves {args.out.name} with Keras: {err}", file=sys.stderr)
        light = None
    summary = {
        "out": str(args.out),
        "litert": light,
        "model": model.name,
        "members": len(members),
        "weights": model.count_params(),
    }
    if balanced is not None:
        summary["balance_tau"] = balanced["tau"]
    print(json.dumps(summary))
    return 0


def balance_members(
    members: Sequence[keras.Model], first: Path, tau: float | str, data: Path | None, mirror: bool
) -> dict[str, Any]:
    """Balance ``members`` in place with ``tau`` (or the tuned one for ``auto``); the card's entry."""
    card = read_card(first)
    shares = class_shares(card)
    entry: dict[str, Any] = {"class_shares": dict(zip(CLASS_NAMES, shares.round(5).tolist(), strict=True))}
    if tau == "auto":
        dataset = load_split(data, BALANCE_SPLIT)
        truth, truth_name = tuning_truth(card, dataset)
        print(f"tuning tau on {BALANCE_SPLIT} against {truth_name}")
        tau, tried = tune_balance(members, dataset, shares, mirror=mirror, truth=truth)
        for row in tried:
            print(
                f"tau {row['tau']:.3f}: {BALANCE_SPLIT} accuracy {row['accuracy']:.4f}, "
                f"macro-F1 {row['macro_f1']:.4f}{'   <- chosen' if row['tau'] == tau else ''}"
            )
        entry.update(tuned_on=BALANCE_SPLIT, truth=truth_name, tried=tried)
    for member in members:
        balance(member, balance_shift(shares, float(tau)))
    return {"tau": float(tau), **entry}


def tuning_truth(card: dict[str, Any] | None, dataset: Dataset) -> tuple[np.ndarray, str]:
    """What ``--balance auto`` scores against: the labels, or for members trained on FER+ votes
    the annotators' majority (training.votes; NO_MAJORITY where there is none)."""
    source = ((card or {}).get("training") or {}).get("labels", {}).get("source", "fer2013")
    if source == "fer2013":
        return dataset.y, "FER2013 labels"
    try:
        votes = read_votes(find_votes(None, dataset.root))
        matched = match(votes, dataset.sources, dataset.root, dataset.split)
    except VotesError as err:
        raise DatasetError(f"the members learnt from FER+ votes, but {err}") from err
    return majority(matched.counts), "FER+ annotators' majority"


if __name__ == "__main__":
    sys.exit(main())
