"""A mixin for small Keras-style objects (schedules, regularisers): get_config() returns the
constructor arguments and repr() shows them."""

from __future__ import annotations


class Configurable:
    def get_config(self) -> dict:
        """The constructor arguments (Keras' name for it)."""
        return dict(vars(self))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"
