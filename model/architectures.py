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

import functools
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


def augmentation_layers(*, erasing: float = 0.0, lighting: float = 0.0) -> list[keras.layers.Layer]:
    """Random flips, shifts, zooms and rotations, for training.

    Keras 3 applies them in ``fit`` and also in a plain ``model(x)`` call (their default is
    ``training=True``); ``predict`` and the app's classifier pass ``training=False``, and
    ``training.export`` cuts them out of the file it ships.

    ``lighting`` > 0 adds random brightness and contrast of that strength (webcams and phone photos
    are lit far less evenly than FER2013's crops); ``erasing`` > 0 blanks a random patch in up to
    that share of the images, so no single feature (one eye, the mouth) is relied on alone.
    """
    extra: list[keras.layers.Layer] = []
    if lighting:
        extra += [layers.RandomBrightness(lighting), layers.RandomContrast(lighting)]
    if erasing:
        extra.append(layers.RandomErasing(erasing, value_range=(0, 255)))
    return [
        layers.RandomFlip("horizontal"),
        layers.RandomTranslation(SHIFT, SHIFT),
        layers.RandomZoom(ZOOM),
        layers.RandomRotation(ROTATION),
        *extra,
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


def _residual_block(x: keras.KerasTensor, filters: int) -> keras.KerasTensor:
    """Two 3x3 conv-BN with an identity shortcut: the gradient reaches early layers unchanged."""
    shortcut = x
    x = _conv_bn_relu(x, filters)
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization(gamma_initializer="zeros")(x)  # each block starts as identity
    x = layers.Add()([shortcut, x])
    return layers.Activation("relu")(x)


def resnet_body(x: keras.KerasTensor, width: int) -> keras.KerasTensor:
    """A compact residual CNN: one conv at full resolution, then three residual stages.

    Each stage halves the grid (24, 12, 6) and doubles the channels from ``width``: a pool, a
    widening conv and one residual block. Each stage costs about the same, so ``width`` scales the
    whole net: 32 is about 0.5 M weights and 40 MMAC per face, 64 about 2 M and 160 MMAC. A second
    full-resolution conv would add little and halve the training speed on a CPU (memory bound).
    """
    x = _conv_bn_relu(x, 32)
    for filters in (width, 2 * width, 4 * width):
        x = layers.MaxPooling2D(2)(x)
        x = _conv_bn_relu(x, filters)
        x = _residual_block(x, filters)
    x = layers.GlobalAveragePooling2D()(x)
    return layers.Dropout(0.4)(x)


ARCHITECTURES: dict[str, Body] = {
    "classic": classic_body,
    "vgg_bn": vgg_bn_body,
    # Sized for two CPU cores: ~150 training images/s, 30 FER2013 epochs in about 1.5 h.
    "resnet": functools.partial(resnet_body, width=32),
    # Four times the compute: for a GPU, or a CPU with time to spare.
    "resnet_wide": functools.partial(resnet_body, width=64),
}


def build_model(
    name: str, *, augment: bool = False, erasing: float = 0.0, lighting: float = 0.0
) -> keras.Model:
    """Build architecture ``name`` wrapped in the shared input, rescaling and softmax contract.

    The model is named after its architecture, so ``model.name`` tells a loaded model's kind.
    ``erasing`` and ``lighting`` strengthen the augmentation (see ``augmentation_layers``). The
    softmax is computed in float32 even under a mixed-precision policy.
    """
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}")
    inputs = keras.Input(INPUT_SHAPE, dtype="float32", name="pixels")
    x = inputs
    if augment:
        for layer in augmentation_layers(erasing=erasing, lighting=lighting):
            x = layer(x)
    x = layers.Rescaling(1.0 / 255, name="rescale")(x)
    x = ARCHITECTURES[name](x)
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)
