"""Read-only containers for values shared between requests.

A cached value is handed to every request until it expires, so a request must not be
able to change it for the others. JSON objects and arrays become subclasses of ``dict``
and ``list`` (so ``json.dumps``, FastAPI and pydantic treat them as usual) whose
mutating methods raise ``TypeError``. This costs one conversion per fetch instead of a
deep copy per request.

Their ``repr`` (and so ``str``, f-strings, ``pprint`` and a traceback's locals) shows the
shape and the keys but masks every leaf, since these containers hold decrypted values;
only code that asks for a value (indexing, iteration, ``dict(...)``, ``json.dumps``) gets
it. Only ``repr`` is overridden: reading and freezing cost what they did.
"""

from __future__ import annotations

from typing import Any, NoReturn

_HINT = (
    "values from parameters_secrets are shared between requests and read-only; "
    "copy.deepcopy(value) gives a mutable copy"
)


MASK = "***"


def _read_only(self: object, *args: object, **kwargs: object) -> NoReturn:  # noqa: ARG001
    raise TypeError(f"{type(self).__name__} is read-only: {_HINT}")


class FrozenDict(dict[str, Any]):
    """A ``dict`` that refuses to change."""

    __slots__ = ()
    __setitem__ = __delitem__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only
    __ior__ = _read_only

    def __repr__(self) -> str:
        return masked_repr(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))

    # Copying is how a caller gets something to change: copies are plain and mutable.
    def __copy__(self) -> dict[str, Any]:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return {key: thaw(item) for key, item in self.items()}


class FrozenList(list[Any]):
    """A ``list`` that refuses to change."""

    __slots__ = ()
    __setitem__ = __delitem__ = _read_only
    append = extend = insert = pop = remove = clear = sort = reverse = _read_only
    __iadd__ = __imul__ = _read_only

    def __repr__(self) -> str:
        return masked_repr(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenList, (list(self),))

    def __copy__(self) -> list[Any]:
        return list(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        return [thaw(item) for item in self]


def freeze(value: Any) -> Any:
    """Return ``value`` with every container inside it made read-only.

    Dicts and lists become :class:`FrozenDict` and :class:`FrozenList`; tuples (named
    ones included) are rebuilt around frozen items; sets become frozensets and bytearrays
    bytes. Other objects are returned as they are: a callable transform that builds its
    own objects should make them immutable (a frozen dataclass, a frozen pydantic model).
    """
    if isinstance(value, (str, bytes, int, float, type(None), FrozenDict, FrozenList)):
        return value  # the common leaves, and what is frozen already
    if isinstance(value, (dict, list, tuple)):
        return _frozen_container(value)
    if isinstance(value, (set, frozenset)):
        return frozenset(value)  # set members are hashable, so immutable already
    if isinstance(value, bytearray):
        return bytes(value)
    return value


def _frozen_container(value: dict[Any, Any] | list[Any] | tuple[Any, ...]) -> Any:
    if isinstance(value, dict):
        return FrozenDict({key: freeze(item) for key, item in value.items()})
    if isinstance(value, list):
        return FrozenList(freeze(item) for item in value)
    return _rebuilt(value, [freeze(item) for item in value])


def _rebuilt(value: tuple[Any, ...], items: list[Any]) -> tuple[Any, ...]:
    """A tuple of ``items``; of ``value``'s type if that is a namedtuple (it keeps its
    type, and its repr shows its field names)."""
    make = getattr(type(value), "_make", None)
    return make(items) if callable(make) else tuple(items)


def thaw(value: Any) -> Any:
    """A mutable deep copy of a frozen value: plain dicts and lists all the way down."""
    if isinstance(value, dict):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, list):
        return [thaw(item) for item in value]
    if isinstance(value, tuple):
        return _rebuilt(value, [thaw(item) for item in value])
    return value


def masked_repr(value: Any) -> str:
    """``repr(value)`` with its containers' shape and keys, and every leaf shown as ``'***'``:
    ``{'db': {'password': '***', 'ports': ['***', '***']}}``."""
    try:
        return repr(_masked(value, set()))
    except RecursionError:  # nested deeper than the stack: still no value, and no error
        return f"<{type(value).__name__} nested too deeply to show>"


def _masked(value: Any, seen: set[int]) -> Any:
    if not isinstance(value, (dict, list, tuple, set, frozenset)):
        return MASK  # a leaf, whatever its type: a number or a flag can be secret too
    if id(value) in seen:
        return ...  # a cycle (only a callable transform can build one): repr shows "Ellipsis"
    seen = seen | {id(value)}
    if isinstance(value, (set, frozenset)):
        return {MASK} if value else set()  # a set's members are its values: not even a count
    return _masked_container(value, seen)


def _masked_container(value: dict[Any, Any] | list[Any] | tuple[Any, ...], seen: set[int]) -> Any:
    if isinstance(value, dict):
        return {key: _masked(item, seen) for key, item in value.items()}
    items = [_masked(item, seen) for item in value]
    return items if isinstance(value, list) else _rebuilt(value, items)
