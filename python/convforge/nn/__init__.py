"""convforge.nn: a thin Keras-style network API on channels-first (NCHW) data.

    from convforge import nn
    model = nn.Sequential([
        nn.Conv2D(8, 3, activation="relu", input_shape=(1, 28, 28)),
        nn.MaxPooling2D(2), nn.Flatten(), nn.Dense(10)])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2)

Layers run on the active convforge backend (convforge.set_backend / use_backend) and on the
array module of their inputs (NumPy or CuPy). Weights are float32 unless a dtype is given.
"""

from . import callbacks, initializers, metrics, regularizers
from ._buffers import reuse_step_buffers
from .base import Input, Layer, Parameter, SymbolicTensor, set_seed
from .callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    EpochTimer,
    History,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TerminateOnNaN,
)
from .layers import (
                     Activation,
                     Add,
                     AveragePooling2D,
                     BatchNormalization,
                     Conv2D,
                     Dense,
                     Dropout,
                     Flatten,
                     GlobalAveragePooling2D,
                     GlobalMaxPooling2D,
                     MaxPooling2D,
                     MinPooling2D,
                     ReLU,
                     Sigmoid,
                     Softmax,
                     ZeroPadding2D,
)
from .model import Model, Sequential
from .preprocessing import Normalization, Rescaling

__all__ = [
    "Input", "Layer", "Parameter", "SymbolicTensor", "set_seed", "Model", "Sequential",
    "Conv2D", "Dense", "MaxPooling2D", "AveragePooling2D", "MinPooling2D",
    "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Flatten", "Dropout", "Activation", "ReLU",
    "Sigmoid", "Softmax", "Rescaling", "Normalization", "ZeroPadding2D", "BatchNormalization",
    "Add",
    "Callback", "History", "EarlyStopping", "ModelCheckpoint", "CSVLogger",
    "LearningRateScheduler", "ReduceLROnPlateau", "TerminateOnNaN", "EpochTimer",
    "callbacks", "initializers", "metrics", "regularizers", "reuse_step_buffers",
]
