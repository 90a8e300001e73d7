"""Grad-CAM on real faces with the shipped model, and on any model that keeps the contract.

Which places a heatmap favours depends on the model, so the real-face test asks only what any
reasonable emotion model does with a broad smile: the mouth argues for "happy" more than the
crop's border (hair, background) does.
"""

from __future__ import annotations

import numpy as np
import pytest

from app.classifier import EmotionClassifier
from app.detection import FaceDetector
from app.emotions import CLASS_NAMES, DEFAULT_MODEL_PATH, IMAGE_SIZE, INPUT_SHAPE
from app.explain import ExplainError, GradCam, Grid, heatmap_image
from app.framing import crop_faces
from app.images import read_image, to_gray
from app.pipeline import Pipeline

from bad_inputs import FIXTURES

#: Every smiling portrait we have, whatever the model calls it: the explanation asked for is "happy".
SMILING = [*sorted((FIXTURES / "faces").glob("*_happy.jpg")), FIXTURES / "astronaut.png"]
HAPPY = CLASS_NAMES.index("happy")
#: Rows and columns of a FER-framed 48×48 crop where the mouth is.
MOUTH = (slice(30, 44), slice(12, 36))
BORDER = 6  # pixels: the crop's outer ring, mostly hair, ears and background


@pytest.fixture(scope="module")
def classifier() -> EmotionClassifier:
    return EmotionClassifier.load(DEFAULT_MODEL_PATH)


@pytest.fixture(scope="module")
def smiling_crops(classifier: EmotionClassifier) -> np.ndarray:
    """The largest face of each smiling photo, cut as the classifier sees it."""
    pipeline = Pipeline(FaceDetector(), classifier)
    crops = []
    for path in SMILING:
        rgb = read_image(path)
        faces = pipeline.analyze(rgb)
        crops.append(crop_faces(to_gray(rgb), [faces[0].box])[0])
    return np.stack(crops)


def border_mean(heat: np.ndarray) -> float:
    ring = np.ones_like(heat, dtype=bool)
    ring[BORDER:-BORDER, BORDER:-BORDER] = False
    return float(heat[ring].mean())


def test_a_smile_is_explained_by_the_mouth_more_than_by_the_background(classifier, smiling_crops):
    heat = GradCam(classifier.model)(smiling_crops, [HAPPY] * len(smiling_crops))

    assert heat.shape == (len(SMILING), IMAGE_SIZE, IMAGE_SIZE)
    assert heat.min() >= 0 and np.allclose(heat.max(axis=(1, 2)), 1)
    for path, cam in zip(SMILING, heat, strict=True):
        mouth = float(cam[MOUTH].mean())
        assert mouth > 1.2 * border_mean(cam), (
            f"{path.name}: mouth {mouth:.2f}, border {border_mean(cam):.2f}"
        )


def test_each_class_gets_its_own_explanation(classifier, smiling_crops):
    crop = smiling_crops[:1]
    cam = GradCam(classifier.model)
    happy, sad = cam(crop, [HAPPY]), cam(crop, [CLASS_NAMES.index("sad")])
    assert np.corrcoef(happy.ravel(), sad.ravel())[0, 1] < 0.9


def test_the_page_picture_is_the_face_under_its_heatmap(classifier, smiling_crops):
    crop = smiling_crops[0, :, :, 0]
    picture = heatmap_image(GradCam(classifier.model), crop, HAPPY, side=96)
    assert picture.shape == (96, 96, 3) and picture.dtype == np.uint8
    assert picture.std(axis=-1).mean() > 5  # coloured, not the gray face alone


@pytest.mark.parametrize(
    ("architecture", "cells", "grid"),
    [("classic", 8, Grid(4, 10)), ("vgg_bn", 12, Grid.stretched(12))],
    ids=["valid-padding", "same-padding"],
)
def test_each_cell_is_drawn_over_the_pixels_it_looks_at(architecture, cells, grid):
    """Unpadded convolutions shrink the map towards the centre: the classic CNN's 8×8 cells sit at
    pixels 10, 14, … 38; with "same" padding the cells tile the crop evenly."""
    from model.architectures import build_model

    cam = GradCam(build_model(architecture))
    assert cam.grid == grid
    one_cell = np.zeros((cells, cells), np.float32)
    one_cell[2, 5] = 1.0
    heat = cam.grid.to_input(one_cell)
    row, column = np.unravel_index(heat.argmax(), heat.shape)
    assert (row + 0.5, column + 0.5) == pytest.approx(
        (grid.scale * 2 + grid.offset, grid.scale * 5 + grid.offset), abs=0.5
    )


def _contract_model(body) -> object:
    import keras

    inputs = keras.Input(INPUT_SHAPE)
    x = keras.layers.Rescaling(1 / 255)(inputs)
    outputs = keras.layers.Dense(len(CLASS_NAMES), activation="softmax")(body(x))
    return keras.Model(inputs, outputs)


def test_any_contract_model_with_a_convolution_can_be_explained():
    import keras

    from model.architectures import build_model

    model = build_model("vgg_bn")  # untrained: only the mechanics are checked
    cam = GradCam(model)
    convs = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert cam.layer_name == convs[-1]
    heat = cam(np.random.default_rng(0).uniform(0, 255, (2, *INPUT_SHAPE)), [0, 6])
    assert heat.shape == (2, IMAGE_SIZE, IMAGE_SIZE) and heat.min() >= 0 and heat.max() <= 1


def test_a_model_without_convolutions_is_refused_with_a_reason():
    import keras

    with pytest.raises(ExplainError, match="no 2D convolution"):
        GradCam(_contract_model(lambda x: keras.layers.Flatten()(x)))


def test_a_residual_net_is_cut_after_its_last_addition_instead_of_inside_the_block():
    from model.architectures import build_model

    model = build_model("resnet")  # the last convolution has the block's skip connection around it
    cam = GradCam(model)

    assert type(model.get_layer(cam.layer_name)).__name__ == "Activation"  # the block's output
    heat = cam(np.random.default_rng(0).uniform(0, 255, (2, *INPUT_SHAPE)), [3, 4])
    assert heat.shape == (2, IMAGE_SIZE, IMAGE_SIZE) and np.isfinite(heat).all()


def test_a_model_that_cannot_be_cut_anywhere_is_refused_with_a_reason():
    from keras import layers

    def two_paths(x):
        first = layers.Conv2D(4, 3, padding="same")(x)
        second = layers.Conv2D(4, 3, padding="same")(first)
        pooled = [layers.GlobalAveragePooling2D()(maps) for maps in (first, second)]
        return layers.Concatenate()(pooled)

    with pytest.raises(ExplainError, match="can't be split"):
        GradCam(_contract_model(two_paths))
