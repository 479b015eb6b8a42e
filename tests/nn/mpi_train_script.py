"""Helper of tests/nn/test_mpi.py, run as a script (alone, or under mpiexec):

    python mpi_train_script.py train OUT.npz [--dp]   # a few fit steps; rank 0 writes weights
    python mpi_train_script.py raise                  # rank 1 raises after a collective

A small CNN (conv + BatchNormalization + ReLU + max pool + dense) in float64, SGD with momentum
and weight decay, on random data: global batches of 16 over 56 samples (the last one 8), two
epochs, shuffled from a fixed seed. With --dp the model is made data-parallel over the MPI
world (convforge.distributed); without, it trains in one process. Also prints the epoch logs
(rank 0) so the test can compare the losses.
"""

import json
import sys

import numpy as np

import convforge
from convforge import distributed, nn
from convforge.optim import SGD


def build():
    convforge.set_seed(7)
    x = nn.Input((2, 8, 8), dtype="float64")
    h = nn.Conv2D(4, 3, padding="same")(x)
    h = nn.BatchNormalization(momentum=0.9)(h)
    h = nn.ReLU()(h)
    h = nn.MaxPooling2D(2)(h)
    h = nn.Conv2D(6, 3, padding="same", activation="relu")(h)
    h = nn.MaxPooling2D(2)(h)
    h = nn.Flatten()(h)
    model = nn.Model(x, nn.Dense(5)(h))
    model.compile(SGD(0.1, momentum=0.9, weight_decay=1e-3),
                  "sparse_categorical_crossentropy", ["accuracy"])
    return model


def train(out: str, dp: bool) -> None:
    world = distributed.init(threads=1) if dp else None
    rng = np.random.default_rng(0)
    x = rng.standard_normal((56, 2, 8, 8))
    y = rng.integers(0, 5, 56)
    model = build()
    if dp:
        distributed.data_parallel(model, world, bucket_mb=0.0005)   # several buckets
    hist = model.fit(x, y, batch_size=16, epochs=2, seed=3, verbose=0)
    ev = model.evaluate(x, y, batch_size=16)
    if world is None or world.is_root:
        np.savez(out, *model.get_weights())
        print(json.dumps({"history": hist.history, "evaluate": ev}))


def fail() -> None:
    world = distributed.init()
    world.allreduce_sum(np.ones(1))
    if world.rank == 1:
        raise RuntimeError("rank 1 fails on purpose")
    world.allreduce_sum(np.ones(1))   # rank 0 would wait here forever without the abort


if __name__ == "__main__":
    if sys.argv[1] == "train":
        train(sys.argv[2], "--dp" in sys.argv)
    else:
        fail()
