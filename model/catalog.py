"""The architectures a user can pick, named and described without importing Keras.

The Training page lists them before TensorFlow is loaded (importing it first kept a cold page
blank for ~8 s); :mod:`model.architectures` builds them, under exactly these names (a test checks).
"""

from __future__ import annotations

#: Registry name -> one line for users, in the order the pages offer them.
ARCHITECTURE_NOTES: dict[str, str] = {
    "classic": "The CNN of the FER2013 tutorials, layer for layer (2.3 M weights), to compare with them.",
    "vgg_bn": "A compact VGG with batch normalisation and global average pooling (1.2 M weights).",
    "resnet": "A compact residual CNN sized for two CPU cores (0.5 M weights): the shipped model's.",
    "resnet_wide": "The same residual CNN at four times the compute (2 M weights), for a GPU.",
}
