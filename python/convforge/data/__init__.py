"""Datasets, augmentation and mini-batching for convforge.

    from convforge.data import load_mnist, pad_images, Augment, Batches
    (x_train, y_train), (x_test, y_test) = load_mnist()      # uint8 (N, 1, 28, 28), int64
    x_train = pad_images(x_train, 2)                         # (N, 1, 32, 32) for LeNet-5
    aug = Augment.from_spec("shift=0.1,rotate=10")
    for xb, yb in Batches(x_train, y_train, batch_size=64, seed=0, augment=aug): ...

Where the files are searched for (path=, $CONVFORGE_DATA, user cache, system dirs, download):
see convforge.data.datasets. Corrupt, crafted or oversized data files raise DataError (a
ValueError subclass; ChecksumError is one) with a one-line message naming the file.
"""

from . import augment, batching, datasets
from .augment import *  # noqa: F403 - the package re-exports its modules' public names
from .batching import *  # noqa: F403
from .datasets import *  # noqa: F403

EMNIST_LETTERS_CLASSES = tuple(chr(ord("A") + i) for i in range(26))

__all__ = sorted(augment.__all__ + batching.__all__ + datasets.__all__ +
                 ["EMNIST_LETTERS_CLASSES"])
