"""Base classes of pipeline steps.

Three kinds, all registered in :data:`tfdet.registry.PIPELINE_STEPS`:

* :class:`SourceStep` opens the data: ``dataset()`` yields serialized
  records and ``__call__`` decodes one of them. A pipeline starts with one.
* :class:`MapStep` transforms one example dict; consecutive map steps are
  fused into a single parallel ``Dataset.map``.
* :class:`DatasetStep` transforms the whole dataset (shuffle, repeat, ...).
"""

from __future__ import annotations

import abc
from typing import Any, Dict

import tensorflow as tf

Example = Dict[str, tf.Tensor]


class Step(abc.ABC):  # noqa: B024  (the kinds below declare the abstract methods)
    """Common base: keeps constructor arguments for :meth:`get_config`."""

    def get_config(self) -> Dict[str, Any]:
        """The step's arguments; ``PIPELINE_STEPS.build(config)`` rebuilds it."""
        return {"name": type(self).__name__, **self._config}

    def _remember(self, **config: Any) -> None:
        self._config = config

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._config.items())
        return f"{type(self).__name__}({args})"


class SourceStep(Step):
    """Opens the data; must come first in a pipeline."""

    @abc.abstractmethod
    def dataset(self) -> tf.data.Dataset:
        """A dataset of serialized records."""

    @abc.abstractmethod
    def __call__(self, serialized: tf.Tensor) -> Example:
        """Decodes one serialized record into an example dict."""


class DatasetStep(Step):
    """Transforms the whole dataset."""

    @abc.abstractmethod
    def apply(self, dataset: tf.data.Dataset) -> tf.data.Dataset:
        """Returns the transformed dataset."""


class MapStep(Step):
    """Transforms one example, with probability ``p``.

    Subclasses implement :meth:`transform`; ``p`` < 1 applies it to a random
    fraction of the examples.
    """

    def __init__(self, p: float = 1.0) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{type(self).__name__}: p must be in [0, 1], got {p}")
        self.p = float(p)

    @abc.abstractmethod
    def transform(self, example: Example) -> Example:
        """Returns the transformed example (always applied)."""

    def __call__(self, example: Example) -> Example:
        if self.p >= 1.0:
            return self.transform(example)
        if self.p <= 0.0:
            return example
        return tf.cond(
            tf.random.uniform([]) < self.p,
            lambda: self.transform(dict(example)),
            lambda: dict(example),
        )
