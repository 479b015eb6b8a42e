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

from .augment import (
    FILL_MODES,
    Augment,
    Cutout,
    GaussianNoise,
    RandomCrop,
    RandomFlip,
    RandomRotation,
    RandomShift,
    RandomZoom,
    Step,
    affine_resample,
)
from .batching import Batches, StreamingBatches, random_subset, train_val_split
from .datasets import (
    CIFAR10_CLASSES,
    FASHION_MNIST_CLASSES,
    ChecksumError,
    DataError,
    cache_dir,
    data_roots,
    download,
    find_cifar10_images,
    load_cifar10,
    load_emnist_letters,
    load_fashion_mnist,
    load_image_tree,
    load_mnist,
    pad_images,
    read_idx,
    sha256_file,
    verify_file,
    write_idx,
)

EMNIST_LETTERS_CLASSES = tuple(chr(ord("A") + i) for i in range(26))

__all__ = [
    "CIFAR10_CLASSES",
    "EMNIST_LETTERS_CLASSES",
    "FASHION_MNIST_CLASSES",
    "FILL_MODES",
    "Augment",
    "Batches",
    "ChecksumError",
    "Cutout",
    "DataError",
    "GaussianNoise",
    "RandomCrop",
    "RandomFlip",
    "RandomRotation",
    "RandomShift",
    "RandomZoom",
    "Step",
    "StreamingBatches",
    "affine_resample",
    "cache_dir",
    "data_roots",
    "download",
    "find_cifar10_images",
    "load_cifar10",
    "load_emnist_letters",
    "load_fashion_mnist",
    "load_image_tree",
    "load_mnist",
    "pad_images",
    "random_subset",
    "read_idx",
    "sha256_file",
    "train_val_split",
    "verify_file",
    "write_idx",
]
