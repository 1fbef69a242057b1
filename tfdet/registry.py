"""Registries that let users choose every configurable piece by name.

A registry maps names to classes or factory functions. Components register
themselves with a decorator and users build them from plain config dicts, the
way the seed's configs are written::

    from tfdet.registry import NECKS

    @NECKS.register()  # as "FPN" (its class name); "fpn" finds it too
    class FPN(tf_keras.layers.Layer):
        ...

    neck = NECKS.build(dict(name="fpn", filters=256))

Lookup is exact first, then case- and separator-insensitive ("AnchorHead",
"anchor_head" and "anchorhead" all find the same entry). An unknown name
raises :class:`RegistryError` listing the registered names and the closest
match.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, TypeVar

T = TypeVar("T")


class RegistryError(KeyError):
    """An unknown or duplicate name in a :class:`Registry`."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""


def _normalise(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


class Registry:
    """A named table of buildable things (classes or factory functions).

    Args:
        kind: what the registry holds, used in error messages (e.g. "backbone").
        builtins: packages (or modules) whose modules register the built-in
            entries; every module of them is imported on the first lookup, so
            ``NECKS.build(...)`` works without importing the module that defines
            the neck, and a new part is one file with its ``@REGISTRY.register``.
    """

    def __init__(self, kind: str, builtins: tuple = ()) -> None:
        self.kind = kind
        self._entries: Dict[str, Callable[..., Any]] = {}
        self._builtins = tuple(builtins)
        self._builtins_loaded = not builtins

    def _load_builtins(self) -> None:
        if not self._builtins_loaded:
            self._builtins_loaded = True
            for name in self._builtins:
                module = importlib.import_module(name)
                for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
                    if not info.name.startswith("_"):
                        importlib.import_module(f"{name}.{info.name}")

    def register(self, name: Optional[str] = None, *, aliases: tuple = ()) -> Callable[[T], T]:
        """Decorator that registers a class or function under ``name``.

        Args:
            name: the public name; defaults to the object's ``__name__``.
            aliases: further names for the same entry.

        Raises:
            RegistryError: if a name (or its normalised form) is already taken.
        """

        def decorator(obj: T) -> T:
            for key in (name or obj.__name__, *aliases):
                self._add(key, obj)
            return obj

        return decorator

    def _add(self, key: str, obj: Callable[..., Any]) -> None:
        # no scan of the built-ins here: a module registering its class is itself one of them, half imported
        clash = self._find(key, load_builtins=False)
        if clash is not None and self._entries[clash] is not obj:
            raise RegistryError(
                f"{self.kind} name {key!r} is already registered (as {clash!r}); "
                f"choose another name"
            )
        self._entries[key] = obj

    def _find(self, key: str, load_builtins: bool = True) -> Optional[str]:
        if load_builtins:
            self._load_builtins()
        if key in self._entries:
            return key
        wanted = _normalise(key)
        for existing in self._entries:
            if _normalise(existing) == wanted:
                return existing
        return None

    def get(self, name: str) -> Callable[..., Any]:
        """Returns the entry registered as ``name``.

        Raises:
            RegistryError: naming the registered entries and the closest match.
        """
        if not isinstance(name, str):
            raise RegistryError(f"{self.kind} name must be a string, got {name!r}")
        key = self._find(name)
        if key is None:
            raise RegistryError(self._unknown_message(name))
        return self._entries[key]

    def _unknown_message(self, name: str) -> str:
        known = self.names
        by_norm = {_normalise(k): k for k in known}
        close = difflib.get_close_matches(_normalise(name), list(by_norm), n=1, cutoff=0.5)
        hint = f" Did you mean {by_norm[close[0]]!r}?" if close else ""
        return (
            f"unknown {self.kind} {name!r}.{hint} "
            f"Registered {self.kind} names: {', '.join(known) or '(none)'}"
        )

    def build(self, config: Mapping[str, Any], **defaults: Any) -> Any:
        """Builds an entry from a config dict ``{'name': ..., **kwargs}``.

        Args:
            config: a mapping with a ``name`` key; the other keys are passed as
                keyword arguments. The mapping is not modified.
            **defaults: keyword arguments used where ``config`` does not set them.

        Raises:
            RegistryError: if ``config`` has no ``name`` or names nothing known.
            TypeError: if the entry rejects the arguments; the message names the
                entry and the config.
        """
        if not isinstance(config, Mapping) and not hasattr(config, "keys"):  # Keras wraps dicts
            raise RegistryError(
                f"a {self.kind} config must be a dict with a 'name' key, got {config!r}"
            )
        config = {key: config[key] for key in config.keys()}
        if "name" not in config:
            raise RegistryError(
                f"{self.kind} config {dict(config)!r} has no 'name' key; "
                f"add one of: {', '.join(self.names)}"
            )
        kwargs = {**defaults, **{k: v for k, v in config.items() if k != "name"}}
        factory = self.get(config["name"])
        try:
            return factory(**kwargs)
        except TypeError as error:
            raise TypeError(f"cannot build {self.kind} {config['name']!r} from {dict(config)!r}: {error}") from error

    @property
    def names(self) -> List[str]:
        """The registered names, sorted."""
        self._load_builtins()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._find(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names})"


BACKBONES = Registry("backbone", builtins=("tfdet.models.backbones",))
NECKS = Registry("neck", builtins=("tfdet.models.necks",))
HEADS = Registry("head", builtins=("tfdet.models.heads",))
ASSIGNERS = Registry("assigner", builtins=("tfdet.core",))
SAMPLERS = Registry("sampler", builtins=("tfdet.core",))
BOX_CODERS = Registry("box coder", builtins=("tfdet.core",))
LOSSES = Registry("loss", builtins=("tfdet.models.losses",))
PIPELINE_STEPS = Registry("pipeline step", builtins=("tfdet.dataio.steps",))
IMPORTERS = Registry("importer", builtins=("tfdet.dataio.importers",))

__all__ = [
    "Registry",
    "RegistryError",
    "BACKBONES",
    "NECKS",
    "HEADS",
    "ASSIGNERS",
    "SAMPLERS",
    "BOX_CODERS",
    "LOSSES",
    "PIPELINE_STEPS",
    "IMPORTERS",
]
