"""Start a run from a trained model's weights instead of from random ones (fine-tuning).

A saved model (a run's ``best.keras``, or one member of an exported ensemble such as the shipped
``model/emotion_cnn.keras``) already knows faces; training it further on better targets, such as
the FER+ annotators' votes (training.votes), costs a fraction of the epochs a fresh start needs:
on two AVX2 cores a ``resnet`` epoch is 3-4 minutes, and 40 fresh epochs most of a day's budget.

Saved models are served models (training.export.serving_model): their batch normalisations are
folded into the convolution before each, which then has a bias. The new run is built from its
architecture as usual (augmentation, BN), and each folded convolution is unfolded into it exactly:
the kernel as it is, and a frozen BN that adds the bias (gamma 1, beta the bias, moving mean 0 and
variance ``1 - epsilon``). Frozen, because a BN in training mode would normalise with batch
statistics that the folded weights never saw; Keras 3 runs a non-trainable BN in inference mode,
so the new model computes exactly what the saved one does before the first step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import layers

from app.classifier import EmotionClassifier, ModelError
from app.emotions import CLASS_NAMES
from app.model_card import ModelCardError, read_card
from training.export import balance_shift


class WarmStartError(ValueError):
    """The model to start from is missing, unreadable or of another architecture; message for users."""


def source_model(path: Path, member: int = 1) -> keras.Model:
    """The model at ``path``, or its ``member``-th member when it is an exported ensemble.

    An ensemble's members carry the export's class balancing in their last bias; it is taken back
    out (from the card), so the run starts from what the member learnt, not from the tuned prior.
    """
    try:
        model = EmotionClassifier.load(path).model
    except ModelError as err:
        raise WarmStartError(f"the model to start from, {path}: {err}") from err
    members = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if not members:
        if member != 1:
            raise WarmStartError(f"{path} is a single model; it has no member {member}")
        return model
    if not 1 <= member <= len(members):
        raise WarmStartError(f"{path} has {len(members)} member models; pick 1 to {len(members)}")
    chosen = members[member - 1]
    unbalance(chosen, path)
    return chosen


def unbalance(member: keras.Model, path: Path) -> None:
    """Subtract the export's logit adjustment (if its card records one) from ``member``'s head bias."""
    try:
        card = read_card(path) or {}
    except ModelCardError:
        return
    balance = card.get("export", {}).get("balance")
    if not balance:
        return
    shares = np.array([balance["class_shares"][name] for name in CLASS_NAMES], dtype=np.float64)
    head = member.layers[-1]
    kernel, bias = head.get_weights()
    head.set_weights([kernel, bias - balance_shift(shares, float(balance["tau"])).astype(bias.dtype)])


def warm_start(model: keras.Model, source: keras.Model) -> None:
    """Give the freshly built ``model`` the function of ``source`` (same architecture, served or not).

    Weighted layers are paired in order; a Conv2D + BatchNormalization pair of ``model`` takes a
    folded convolution of ``source`` (see the module docstring). WarmStartError when the two do
    not line up (another architecture or width).
    """
    targets = [layer for layer in model.layers if layer.weights]
    sources = [layer for layer in source.layers if layer.weights]
    position = 0
    for target in targets:
        if isinstance(target, layers.BatchNormalization):
            continue  # filled with the convolution before it
        if position >= len(sources):
            raise WarmStartError(_mismatch(model, source))
        weights = [np.asarray(w) for w in sources[position].get_weights()]
        position += 1
        follower = _batch_norm_after(model, target)
        if follower is not None and len(weights) == 2 and len(target.get_weights()) == 1:
            kernel, bias = weights
            _check_shapes(target, [kernel], model, source)
            target.set_weights([kernel])
            follower.set_weights(_identity_norm(bias, follower.epsilon))
            follower.trainable = False
            continue
        if follower is not None:  # the source kept its batch normalisation: copy both as they are
            _check_shapes(target, weights, model, source)
            target.set_weights(weights)
            norm_weights = [np.asarray(w) for w in sources[position].get_weights()]
            position += 1
            _check_shapes(follower, norm_weights, model, source)
            follower.set_weights(norm_weights)
            continue
        _check_shapes(target, weights, model, source)
        target.set_weights(weights)
    if position != len(sources):
        raise WarmStartError(_mismatch(model, source))


def _batch_norm_after(model: keras.Model, layer: keras.layers.Layer) -> layers.BatchNormalization | None:
    """The BatchNormalization that takes ``layer``'s output alone, if any."""
    for candidate in model.layers:
        if not isinstance(candidate, layers.BatchNormalization):
            continue
        inbound = candidate._inbound_nodes[0].input_tensors if candidate._inbound_nodes else []
        if len(inbound) == 1 and inbound[0]._keras_history.operation is layer:
            return candidate
    return None


def _identity_norm(bias: np.ndarray, epsilon: float) -> list[np.ndarray]:
    """BN weights (gamma, beta, moving mean, moving variance) that add ``bias`` and nothing else."""
    ones = np.ones_like(bias)
    return [ones, bias, np.zeros_like(bias), ones - epsilon]


def _check_shapes(layer: keras.layers.Layer, weights: list[np.ndarray], model: Any, source: Any) -> None:
    if [tuple(w.shape) for w in layer.get_weights()] != [tuple(w.shape) for w in weights]:
        raise WarmStartError(_mismatch(model, source))


def _mismatch(model: keras.Model, source: keras.Model) -> str:
    return (
        f"the model to start from ({source.name}, {source.count_params():,} weights) is not a "
        f"{model.name}: pick the architecture it was trained with"
    )
