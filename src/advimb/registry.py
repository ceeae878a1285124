"""One registry type for every open set of advimb: models, attacks, dataset sources, long-tail
profiles and defences. Each stage owns one :class:`Registry`; its built-in entries register by
decorator (or :meth:`Registry.add`), and a stage whose set is open to outside code names the
form of those plug-ins (``torchvision:<name>``, ``torchattacks:<Attack>``, ...) with a rule that
says whether a name is one and a function that resolves it. Looking a name up checks it: an
unknown name raises a :class:`~advimb.errors.UserError` that lists the choices, before anything
is written. A leaf module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from advimb.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind.

    ``unknown``: the error for a name that is neither registered nor a plug-in, formatted with
    ``name`` (the name asked for) and ``names`` (the registered ones, comma-separated).
    ``sort``: list the names sorted (else in registration order, for sets whose order means
    something, such as the defences'). ``is_plugin`` and ``plugin``: the rule for an outside
    name and what resolves it to an entry.
    """

    def __init__(
        self,
        unknown: str,
        *,
        sort: bool = True,
        is_plugin: Callable[[str], bool] | None = None,
        plugin: Callable[[str], T] | None = None,
    ) -> None:
        if (is_plugin is None) != (plugin is None):
            raise ValueError("a registry with plug-ins needs both is_plugin and plugin")  # a bug
        self._entries: dict[str, T] = {}
        self._unknown, self._sort = unknown, sort
        self._is_plugin, self._plugin = is_plugin, plugin

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` as ``name`` (a later registration replaces an earlier one)."""
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """A decorator that registers what it decorates as ``name``."""

        def deco(entry: T) -> T:
            return self.add(name, entry)

        return deco

    def names(self) -> list[str]:
        """The registered names (plug-ins are not listed: they are open)."""
        return sorted(self._entries) if self._sort else list(self._entries)

    def is_plugin(self, name: str) -> bool:
        return self._is_plugin is not None and self._is_plugin(name)

    def get(self, name: str) -> T:
        """The entry of ``name``: a registered one, else a resolved plug-in; a
        :class:`~advimb.errors.UserError` that lists the choices for any other name."""
        if self._plugin is not None and self.is_plugin(name):
            return self._plugin(name)
        if name not in self._entries:
            raise UserError(self._unknown.format(name=name, names=", ".join(self.names())))
        return self._entries[name]

    def check(self, name: str) -> None:
        """Raise the :meth:`advimb.registry.Registry.get` error if ``name`` is not a valid choice."""
        self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __getitem__(self, name: str) -> T:
        """The entry of ``name`` (:meth:`Registry.get`: an unknown name is a one-line error)."""
        return self.get(name)

    def items(self) -> list[tuple[str, T]]:
        """The registered (name, entry) pairs, in :meth:`Registry.names`' order."""
        return [(n, self._entries[n]) for n in self.names()]
