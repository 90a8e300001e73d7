"""What the CNN looked at: Grad-CAM heatmaps over face crops, for any model that keeps the contract.

Grad-CAM (Selvaraju et al., 2017) multiplies a convolution layer's feature maps by the gradient
of the class score and sums over the channels, keeping the positive part: a coarse map of the
places whose features argued *for* the class. It needs one forward and one backward pass, and no
change to the model. We use its HiResCAM form (Draelos and Carin, 2020): each place keeps its
own gradient, where the original first averages the gradient over all places. After a global
average pooling the two are the same (every place gets the same gradient); after ``Flatten`` and
``Dense``, as in the shipped classic CNN, only HiResCAM is each place's real share of the score.
On the shipped model and the twelve smiling London portraits, the averaged form put as much
"happy" on the crop's border as on the mouth or more in 7 of them; HiResCAM put at least twice as
much on the mouth in all twelve.

What a model must expose (every model built by :mod:`model.architectures` does):

- a functional Keras model with one input and one output, as the contract says;
- at least one 2D convolution layer at its top level (``Conv2D``, ``SeparableConv2D`` or
  ``DepthwiseConv2D``; a whole backbone nested as one layer is opaque), or a ``layer_name``;
- nothing after that layer that reads an earlier tensor (no skip connection around it), because
  the model is split there into a *head* (input → feature maps) and a *tail* (maps → softmax);
  in a residual net that is a block's output rather than its last convolution
  (:func:`feature_layers`). A model that wraps whole models (test-time augmentation or an
  ensemble, :mod:`training.export`) is explained by its members' maps, averaged
  (:func:`explained_members`).

Each cell of the feature map is drawn at the centre of its receptive field, found by walking the
layers up to the chosen one (:func:`feature_grid`). Stretching the map over the crop instead is
only right for "same" padding: after the unpadded ("valid") convolutions of the classic CNN, the
8×8 map's cells sit 4 px apart from pixel 10 to 38, and a stretched map would paint the middle of
the face's evidence onto its border.

The score differentiated is the class's log-probability. The contract only exposes softmax
outputs; ``log p_c`` is the class's logit minus a term shared by all classes, so it does not
saturate the way ``p_c`` does near 1, and it reads "evidence for c rather than the others".
Gradients come from the active Keras backend: TensorFlow's ``GradientTape``, ``jax.grad`` or
torch autograd.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from app.emotions import IMAGE_SIZE, INPUT_SHAPE

#: Layer types whose output is a spatial feature map Grad-CAM can weigh.
CONV_LAYER_TYPES = ("Conv2D", "SeparableConv2D", "DepthwiseConv2D")
#: Heatmap opacity over the face in :func:`overlay`.
HEAT_ALPHA = 0.45
#: Below this, log-probabilities are taken of the floor instead (a class the model rules out).
MIN_PROBABILITY = 1e-7
#: Feature maps coarser than this many cells a side are cut earlier where the model allows: over a
#: 48-pixel face a 6×6 map's cell spans mouth and chin. On the thirteen smiling fixtures the shipped
#: residual nets' last 6×6 map put no "happy" on the mouth in three (the ones the model doubts);
#: their 12×12 block output put at least 1.5× the border's on it in all thirteen.
MIN_CELLS = 8


class ExplainError(ValueError):
    """A model Grad-CAM can't take apart; the message says what it lacks."""


def feature_layers(model: Any) -> list[Any]:
    """Where Grad-CAM may cut ``model``, best first: its last top-level 2D convolution (the finest
    map that still knows *where*), then the last top-level layer with a spatial output, both among
    maps of at least :data:`MIN_CELLS` a side where there are such convolutions.

    In a residual net the last convolution has a skip connection around it, so the model can't be
    cut there; the block's output (after the addition) can be, one layer later.
    """
    convs = [layer for layer in model.layers if type(layer).__name__ in CONV_LAYER_TYPES]
    if not convs:
        raise ExplainError(
            "the model has no 2D convolution layer at its top level; Grad-CAM needs one "
            "(or name one with layer_name)"
        )
    spatial = [layer for layer in model.layers if len(layer.output.shape) == 4 and layer.output.shape[1] > 1]
    if any(_cells(layer) >= MIN_CELLS for layer in convs):
        convs, spatial = (
            [layer for layer in found if _cells(layer) >= MIN_CELLS] for found in (convs, spatial)
        )
    return [convs[-1], *spatial[-1:]]


def _cells(layer: Any) -> int:
    return int(layer.output.shape[1])


def explained_members(model: Any) -> list[Any]:
    """The models whose layers Grad-CAM reads: ``model`` itself, or for a model that wraps whole
    models (a test-time-augmentation average or an ensemble, see training.export) each member,
    seen on the unflipped input: the average decides, so each member's reasons count alike.
    """
    if any(type(layer).__name__ in CONV_LAYER_TYPES for layer in model.layers):
        return [model]
    members = [layer for layer in model.layers if hasattr(layer, "layers") and hasattr(layer, "inputs")]
    return members or [model]


@dataclass(frozen=True)
class _Cut:
    """One model split for Grad-CAM: input → feature maps (head), maps → softmax (tail)."""

    head: Any
    tail: Any
    layer_name: str
    grid: Grid


@dataclass(frozen=True)
class Grid:
    """Where feature-map cells lie over the input: cell ``j``'s centre is at ``scale * j + offset``
    input pixels (pixel ``k`` spans ``k..k+1``), the same along rows and columns."""

    scale: float
    offset: float

    @classmethod
    def stretched(cls, cells: int, side: int = IMAGE_SIZE) -> Grid:
        """The map spread evenly over the input: what resizing it would assume."""
        return cls(side / cells, side / cells / 2)

    def to_input(self, cam: np.ndarray, side: int = IMAGE_SIZE) -> np.ndarray:
        """``cam`` (cells×cells) resampled at every input pixel's centre, bilinearly; pixels
        beyond the outer cells' centres take those cells' values."""
        to_cell = np.array([[1, 0, 0.5 - self.offset], [0, 1, 0.5 - self.offset]]) / self.scale
        return cv2.warpAffine(
            cam.astype(np.float32),
            to_cell,
            (side, side),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )


def feature_grid(model: Any, layer: Any) -> Grid:
    """The receptive-field centres of ``layer``'s cells, from the kernels, strides and padding of
    the layers before it (in ``model.layers`` order, as in a chain of layers).

    A layer that changes the size in a way this can't follow, or a walk that doesn't end at the
    layer's real size (branches), gives :meth:`Grid.stretched` instead.
    """
    cells = int(layer.output.shape[1])
    size, grid = int(model.inputs[0].shape[1]), Grid(1.0, 0.5)
    for current in model.layers:
        shape = current.output.shape
        if len(shape) != 4:
            continue
        kernel = getattr(current, "kernel_size", None) or getattr(current, "pool_size", None)
        if kernel is not None:
            reach = (getattr(current, "dilation_rate", (1,))[0]) * (kernel[0] - 1) + 1
            stride = current.strides[0]
            if current.padding == "same":
                out = math.ceil(size / stride)
                before = max((out - 1) * stride + reach - size, 0) // 2
            else:
                out, before = (size - reach) // stride + 1, 0
            grid = Grid(grid.scale * stride, grid.scale * ((reach - 1) / 2 - before) + grid.offset)
            size = out
        if shape[1] != size:
            return Grid.stretched(cells)
        if current is layer:
            return grid
    return Grid.stretched(cells)


class GradCam:
    """``GradCam(model)(crops, classes) -> (N, 48, 48)`` heatmaps in 0..1; build once per model.

    ``crops`` are the classifier's input, ``(N, 48, 48, 1)`` float32 pixels in 0..255.
    """

    def __init__(self, model: Any, layer_name: str | None = None) -> None:
        self._cuts = [_cut(member, layer_name) for member in explained_members(model)]
        self.layer_name = self._cuts[0].layer_name
        self.grid = self._cuts[0].grid

    def __call__(self, crops: np.ndarray, classes: Sequence[int]) -> np.ndarray:
        crops = np.asarray(crops, dtype=np.float32)
        if crops.ndim != 4 or crops.shape[1:] != INPUT_SHAPE or len(crops) != len(classes):
            raise ValueError(f"expected {len(classes)} crops of shape {INPUT_SHAPE}, got {crops.shape}")
        heat = sum(_heat(cut, crops, list(classes)) for cut in self._cuts)
        return np.stack([_to_unit(cam) for cam in heat])


def _cut(model: Any, layer_name: str | None) -> _Cut:
    """``model`` split at ``layer_name`` or at the first of :func:`feature_layers` that can be split."""
    import keras

    candidates = [model.get_layer(layer_name)] if layer_name else feature_layers(model)
    problems = []
    for layer in candidates:
        if len(layer.output.shape) != 4:
            problems.append(f"{layer.name!r} outputs {layer.output.shape}, not (N, height, width, channels)")
            continue
        try:
            head = keras.Model(model.inputs[0], layer.output)
            tail = keras.Model(layer.output, model.outputs[0])
        except Exception as err:  # Keras raises several types for a graph it can't cut
            problems.append(
                f"the model can't be split at {layer.name!r} (a skip connection around it?): {err}"
            )
            continue
        return _Cut(head, tail, layer.name, feature_grid(model, layer))
    raise ExplainError("; ".join(problems))


def _heat(cut: _Cut, crops: np.ndarray, classes: list[int]) -> np.ndarray:
    """One model's HiResCAM maps over the crops, each scaled to 0..1."""
    import keras

    features = cut.head(crops, training=False)
    grads = keras.ops.convert_to_numpy(_gradients(cut.tail, features, classes))
    maps = keras.ops.convert_to_numpy(features)
    cams = np.maximum((grads * maps).sum(axis=-1), 0.0)  # each place's own gradient: HiResCAM
    return np.stack([_to_unit(cut.grid.to_input(cam)) for cam in cams])


def _gradients(tail: Any, features: Any, classes: list[int]) -> Any:
    """d(sum of each crop's log-probability of its class) / d(features), on the active backend.

    Crops don't interact at inference, so the gradient of the sum is each crop's own gradient.
    """
    import keras

    ops = keras.ops

    def score(maps: Any) -> Any:
        probabilities = tail(maps, training=False)
        picked = ops.take_along_axis(probabilities, ops.convert_to_tensor(classes)[:, None], axis=1)
        return ops.sum(ops.log(ops.maximum(picked, MIN_PROBABILITY)))

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(features)
            total = score(features)
        return tape.gradient(total, features)
    if backend == "jax":
        import jax

        return jax.grad(score)(features)
    if backend == "torch":
        import torch

        features = features.detach().requires_grad_(True)
        (grads,) = torch.autograd.grad(score(features), features)
        return grads
    raise ExplainError(f"Grad-CAM needs the tensorflow, jax or torch backend, not {backend}")


def _to_unit(cam: np.ndarray) -> np.ndarray:
    """Scale to 0..1 by the map's maximum; an all-zero map (no evidence at all) stays zero."""
    top = float(cam.max())
    return (cam / top if top > 0 else np.zeros_like(cam)).astype(np.float32)


def overlay(crop: np.ndarray, heat: np.ndarray, side: int = 144, alpha: float = HEAT_ALPHA) -> np.ndarray:
    """The gray face with the heatmap over it in the "turbo" colours, as ``side``-pixel RGB.

    The colour's opacity grows with the heat, so the face stays visible where nothing mattered.
    """
    gray = np.clip(np.asarray(crop, dtype=np.float32).reshape(IMAGE_SIZE, IMAGE_SIZE), 0, 255)
    face = cv2.cvtColor(gray.astype(np.uint8), cv2.COLOR_GRAY2RGB)
    face = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    heat = cv2.resize(np.asarray(heat, dtype=np.float32), (side, side), interpolation=cv2.INTER_CUBIC)
    heat = np.clip(heat, 0.0, 1.0)
    colours = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
    colours = cv2.cvtColor(colours, cv2.COLOR_BGR2RGB).astype(np.float32)
    weight = alpha * heat[:, :, None] + 0.15  # a faint tint everywhere keeps the scale readable
    return np.clip(face * (1 - weight) + colours * weight, 0, 255).astype(np.uint8)


def heatmap_image(cam: GradCam, crop: np.ndarray, class_index: int, side: int = 144) -> np.ndarray:
    """What a page shows for one face: the 48×48 crop (0..255, any shape with 48×48 pixels) under
    its Grad-CAM heatmap for ``class_index``, as ``side``-pixel RGB."""
    pixels = np.asarray(crop, dtype=np.float32).reshape(1, *INPUT_SHAPE)
    return overlay(pixels, cam(pixels, [class_index])[0], side)
