"""One small registry per extensible concept (model kind, loss, miner, sampler, ...).

Config names resolve only through a registry, never by if/elif on strings.

Example:
    >>> r = Registry("colour")
    >>> @r.register("red")
    ... def red():
    ...     return "#f00"
    >>> r.get("red")()
    '#f00'
    >>> r.get("blue")
    Traceback (most recent call last):
    ...
    unirank.errors.UnknownName: unknown colour 'blue'; valid: red
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from .errors import UnknownName

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> object table with a helpful error for unknown names.

    Args:
        kind: what is registered (used in error messages, e.g. "loss").
        name_attribute: if set, :meth:`register` also stores the registered name on the
            object under this attribute (a class then knows its own config name).

    Example:
        >>> shapes = Registry("shape", name_attribute="name")
        >>> @shapes.register("square")
        ... class Square:
        ...     pass
        >>> Square.name
        'square'
    """

    def __init__(self, kind: str, name_attribute: str | None = None) -> None:
        self.kind = kind
        self.name_attribute = name_attribute
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``; a name can be registered once."""

        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            if self.name_attribute is not None:
                setattr(obj, self.name_attribute, name)
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        """Return the object registered as ``name`` or raise KeyError listing valid names."""
        try:
            return self._items[name]
        except KeyError:
            valid = ", ".join(sorted(self._items)) or "(none)"
            raise UnknownName(f"unknown {self.kind} {name!r}; valid: {valid}") from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
