"""The model architectures, looked up by name.

Every model honours one contract, so the app, the trainer and the evaluator never care which one
they hold::

    keras.Input(INPUT_SHAPE) float32 grayscale pixels 0..255
    -> [augmentation: Keras preprocessing layers, identity at inference]
    -> Rescaling(1/255) -> body -> Dense(NUM_CLASSES, softmax) in CLASS_NAMES order

Only built-in Keras layers are used, so ``keras.saving.load_model(path)`` works without this
project installed, on any Keras 3 backend.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers

from app.emotions import INPUT_SHAPE, NUM_CLASSES

#: A body maps the rescaled image tensor (0..1) to the features the softmax head reads.
Body = Callable[[keras.KerasTensor], keras.KerasTensor]

# Augmentation strengths. Mild on purpose: FER2013 crops are already aligned faces, and short
# training budgets do not leave time to learn through heavy distortion.
ROTATION = 0.03  # fraction of a full turn: about +-11 degrees
SHIFT = 0.1  # fraction of the image side
ZOOM = 0.1  # fraction of the image side


def augmentation_layers() -> list[keras.layers.Layer]:
    """Random flips, shifts, zooms and rotations; active only when the model is called in training."""
    return [
        layers.RandomFlip("horizontal"),
        layers.RandomTranslation(SHIFT, SHIFT),
        layers.RandomZoom(ZOOM),
        layers.RandomRotation(ROTATION),
    ]


def classic_body(x: keras.KerasTensor) -> keras.KerasTensor:
    """The CNN of the Emojify tutorials, layer for layer, so results compare with theirs."""
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Dropout(0.25)(x)
    x = layers.Conv2D(128, 3, activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(128, 3, activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Dropout(0.25)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(1024, activation="relu")(x)
    return layers.Dropout(0.5)(x)


def _conv_bn_relu(x: keras.KerasTensor, filters: int) -> keras.KerasTensor:
    """3x3 convolution without bias (BatchNormalization supplies the shift), then BN and ReLU."""
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.Activation("relu")(x)


def vgg_bn_body(x: keras.KerasTensor) -> keras.KerasTensor:
    """A compact VGG with BatchNorm: three double-conv blocks, then global average pooling.

    Pooling instead of Flatten keeps the dense head small (about 1.2 M weights in all, under
    5 MB saved) while BatchNorm lets it train fast at a fixed learning rate.
    """
    for filters in (64, 128, 256):
        x = _conv_bn_relu(x, filters)
        x = _conv_bn_relu(x, filters)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(0.25)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(256, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    return layers.Dropout(0.5)(x)


ARCHITECTURES: dict[str, Body] = {
    "classic": classic_body,
    "vgg_bn": vgg_bn_body,
}


def build_model(name: str, *, augment: bool = False) -> keras.Model:
    """Build architecture ``name`` wrapped in the shared input, rescaling and softmax contract.

    The model is named after its architecture, so ``model.name`` tells a loaded model's kind.
    """
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}")
    inputs = keras.Input(INPUT_SHAPE, dtype="float32", name="pixels")
    x = inputs
    if augment:
        for layer in augmentation_layers():
            x = layer(x)
    x = layers.Rescaling(1.0 / 255, name="rescale")(x)
    x = ARCHITECTURES[name](x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)
