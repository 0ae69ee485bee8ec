"""Object graphs as plain data: the format of checkpointed engine state. Pure: no I/O.

Checkpoints used to be pickles, and unpickling calls whatever the bytes name: anyone
able to write to the checkpoint topic could run code in every worker restoring from
it. This format is data only, msgpack through msgspec. Reading it builds builtin
containers and scalars, numpy arrays of numeric dtypes, and instances of the
classes the caller allows (`Classes`: livewatch's own state classes, listed in
streams.worker.checkpoint), made without calling their constructors and given
their attributes; no name in the data is imported or called. A hostile checkpoint
can still hold wrong values, so the checkpoint topic stays writable by the workers
only (docs/deploy.md), but it cannot run code.

The object graph keeps its shape as pickle keeps it: an object reached twice (a
room is in both `rooms` and `_ticking`) is stored once and referred to after.

Every value that is not a scalar (None, bool, int, float, str, bytes) is a list
whose first item is its tag:

    ["r", n]                 the n-th container or object stored before (preorder)
    ["L", [scalars]]         list of scalars      ["l", [values]]      any list
    ["S", [scalars]]         set of scalars       ["s", [values]]      any set
    ["m", {key: scalar}]     dict of str or int keys to scalars
    ["d", [keys], [values]]  any dict             ["c", [keys], [values]]  Counter
    ["q", maxlen, [values]]  deque                ["t", [values]]      tuple
    ["f", [values]]          frozenset
    ["a", dtype, shape, bytes]  numpy array       ["n", dtype, bytes]  numpy scalar
    ["A", typecode, bytes]   array.array of numbers (the standard library's)
    ["o", name, {attribute: value}]  instance of an allowed class
    ["g", name, value]       instance of an allowed class with its own `__setstate__`,
                             given the value its `__getstate__` returned
    ["T", name, [values]]    named tuple of an allowed class
    ["e", name, bytes]       msgspec Struct of an allowed class (events, findings)
    ["E", [names], bytes]    list of msgspec Structs of allowed classes, one class or
                             tagged ones (held events), encoded in one piece
    ["Q", maxlen, [names], bytes]  deque of them

Lists, sets, dicts, Counters, deques, arrays (of both kinds) and objects are numbered in the order
they are first met; tuples, frozensets, named tuples and structs are immutable and
stored whole each time.
"""

from __future__ import annotations

from array import array
from collections import Counter, deque
from collections.abc import Callable
from typing import Any, Final, TypeVar, Union

import msgspec
import numpy as np


class Classes:
    """The classes a graph may hold instances of, by name (their `__qualname__`)."""

    def __init__(self, *classes: type) -> None:
        self.objects: dict[str, type] = {}
        self.tuples: dict[str, type] = {}
        self.structs: dict[str, type[msgspec.Struct]] = {}
        for cls in classes:
            if issubclass(cls, msgspec.Struct):
                table: dict[str, Any] = self.structs
            elif issubclass(cls, tuple):
                table = self.tuples
            else:
                table = self.objects
            if cls.__qualname__ in table:
                raise ValueError(f"two classes named {cls.__qualname__}")
            table[cls.__qualname__] = cls


class StateFormatError(ValueError):
    """The bytes are not an engine state this version can read."""


_SCALARS: Final = frozenset({type(None), bool, int, float, str, bytes})
_MAP_KEYS: Final = frozenset({str, int})
"""Key types of the dicts stored as msgpack maps (the "m" form)."""
_NUMERIC_KINDS: Final = frozenset("biuf")
"""numpy dtype kinds an array may have (object arrays would hold anything)."""
_TYPECODES: Final = frozenset("bBhHiIlLqQfd")
"""`array.array` type codes an array may have: numbers (not 'u', characters)."""


def dump(root: object, classes: Classes) -> bytes:
    try:
        return msgspec.msgpack.encode(_Writer(classes).value(root))
    except (TypeError, OverflowError) as exc:  # a new state type, or an int beyond 64 bits
        raise StateFormatError(f"state not storable: {exc}") from None


T = TypeVar("T")


def load(data: bytes, classes: Classes, root: type[T]) -> T:
    """The graph `data` holds, whose root must be a `root`."""
    try:
        made = _Reader(classes).value(msgspec.msgpack.decode(data))
    except StateFormatError:
        raise
    except Exception as exc:  # whatever the bytes hold, reading them fails only this way
        raise StateFormatError(f"unreadable state: {type(exc).__name__}: {exc}") from None
    if not isinstance(made, root):
        raise StateFormatError(f"the state does not hold a {root.__qualname__}")
    return made


def _attributes(obj: object) -> dict[str, Any]:
    attributes = dict(getattr(obj, "__dict__", {}))
    for cls in type(obj).__mro__:
        for name in cls.__dict__.get("__slots__", ()):
            if name not in ("__dict__", "__weakref__") and hasattr(obj, name):
                attributes[name] = getattr(obj, name)
    return attributes


class _Writer:
    def __init__(self, classes: Classes) -> None:
        self.classes = classes
        self.numbers: dict[int, int] = {}
        self.keep: list[object] = []
        """Everything numbered, alive until the end: ids must not be reused."""

    def value(self, obj: object) -> Any:
        kind = type(obj)
        if kind in _SCALARS:
            return obj
        number = self.numbers.get(id(obj))
        if number is not None:
            return ["r", number]
        if kind is tuple:
            return ["t", self.values(obj)]
        if kind is frozenset:
            return ["f", self.values(obj)]
        if isinstance(obj, tuple) and self.classes.tuples.get(kind.__qualname__) is kind:
            return ["T", kind.__qualname__, self.values(obj)]
        if isinstance(obj, msgspec.Struct) and self.classes.structs.get(kind.__qualname__) is kind:
            return ["e", kind.__qualname__, msgspec.msgpack.encode(obj)]
        if isinstance(obj, np.generic) and obj.dtype.kind in _NUMERIC_KINDS:
            return ["n", obj.dtype.str, obj.tobytes()]
        self.numbers[id(obj)] = len(self.numbers)
        self.keep.append(obj)
        return self._numbered(obj, kind)

    def values(self, items: Any) -> list[Any]:
        return [self.value(item) for item in items]

    def _numbered(self, obj: Any, kind: type) -> list[Any]:
        if kind is list:
            if _flat(obj):
                return ["L", obj]
            names = self._structs_in(obj)
            if names is not None:  # held events: one C call, not one form each
                return ["E", names, msgspec.msgpack.encode(obj)]
            return ["l", self.values(obj)]
        if kind is set:
            return ["S", list(obj)] if _flat(obj) else ["s", self.values(obj)]
        if kind is dict:
            if _MAP_KEYS.issuperset(map(type, obj)) and _flat(obj.values()):
                return ["m", obj]
            return ["d", self.values(obj.keys()), self.values(obj.values())]
        if kind is Counter:
            return ["c", self.values(obj.keys()), self.values(obj.values())]
        if kind is deque:
            names = self._structs_in(obj)
            if names is not None:
                return ["Q", obj.maxlen, names, msgspec.msgpack.encode(list(obj))]
            return ["q", obj.maxlen, self.values(obj)]
        if kind is np.ndarray:
            if obj.dtype.kind not in _NUMERIC_KINDS:
                raise TypeError(f"numpy array of dtype {obj.dtype}")
            return ["a", obj.dtype.str, list(obj.shape), np.ascontiguousarray(obj).tobytes()]
        if kind is array:
            if obj.typecode not in _TYPECODES:
                raise TypeError(f"array.array of type code {obj.typecode!r}")
            return ["A", obj.typecode, obj.tobytes()]
        name = kind.__qualname__
        if self.classes.objects.get(name) is not kind:
            raise TypeError(f"{kind.__module__}.{name} is not an allowed class")
        if _own_state(kind):  # e.g. a sketch of a library's, stored as its bytes
            return ["g", name, self.value(obj.__getstate__())]
        return ["o", name, {a: self.value(v) for a, v in _attributes(obj).items()}]

    def _structs_in(self, items: Any) -> list[str] | None:
        """The names of the items' classes when every item is a msgspec Struct of an
        allowed class, and msgspec can tell them apart when reading (one class, or
        classes tagged in the same field); else None."""
        kinds = set(map(type, items))
        if not kinds or any(self.classes.structs.get(k.__qualname__) is not k for k in kinds):
            return None
        if len(kinds) > 1:
            configs = [k.__struct_config__ for k in kinds]  # type: ignore[attr-defined]
            if any(c.tag is None or c.tag_field != configs[0].tag_field for c in configs):
                return None
        return sorted(k.__qualname__ for k in kinds)


def _own_state(cls: type) -> bool:
    """The class says itself what its state is (`__getstate__` and `__setstate__`)."""
    return getattr(cls, "__setstate__", None) is not None


def _flat(items: Any) -> bool:
    # map(type, ...) walks the items in C: twice as fast as a generator, and the
    # walks are most of what a checkpoint costs.
    return _SCALARS.issuperset(map(type, items))


class _Reader:
    def __init__(self, classes: Classes) -> None:
        self.classes = classes
        self.numbered: list[object] = []
        self.forms: dict[str, Callable[[list[Any]], object]] = {
            "r": self._reference,
            "L": lambda node: self._number(node[1]),
            "l": self._list,
            "S": lambda node: self._number(set(node[1])),
            "s": self._set,
            "m": lambda node: self._number(node[1]),
            "d": self._dict,
            "c": self._counter,
            "q": self._deque,
            "t": lambda node: tuple(self.values(node[1])),
            "f": lambda node: frozenset(self.values(node[1])),
            "T": lambda node: classes.tuples[node[1]](*self.values(node[2])),
            "e": lambda node: msgspec.msgpack.decode(node[2], type=classes.structs[node[1]]),
            "E": self._structs,
            "Q": self._struct_deque,
            "a": self._array,
            "A": self._std_array,
            "n": lambda node: np.frombuffer(node[2], dtype=_numeric(node[1]))[0],
            "o": self._object,
            "g": self._stated,
        }

    def value(self, node: Any) -> Any:
        if type(node) is not list:
            if type(node) is dict:  # only inside an "m" form
                raise StateFormatError("a map outside its form")
            return node
        if not node or type(node[0]) is not str or node[0] not in self.forms:
            raise StateFormatError(f"unknown form {node[:1]!r}")
        return self.forms[node[0]](node)

    def values(self, nodes: Any) -> list[Any]:
        if type(nodes) is not list:
            raise StateFormatError("a form's items are not a list")
        return [self.value(node) for node in nodes]

    def _number(self, obj: Any) -> Any:
        self.numbered.append(obj)
        return obj

    def _reference(self, node: list[Any]) -> object:
        number = node[1]
        if type(number) is not int or not 0 <= number < len(self.numbered):
            raise StateFormatError(f"reference to {number!r} before it was stored")
        return self.numbered[number]

    def _list(self, node: list[Any]) -> list[Any]:
        made: list[Any] = self._number([])
        made.extend(self.values(node[1]))
        return made

    def _set(self, node: list[Any]) -> set[Any]:
        made: set[Any] = self._number(set())
        made.update(self.values(node[1]))
        return made

    def _dict(self, node: list[Any]) -> dict[Any, Any]:
        made: dict[Any, Any] = self._number({})
        made.update(zip(self.values(node[1]), self.values(node[2]), strict=True))
        return made

    def _structs(self, node: list[Any]) -> list[Any]:
        made = self._decode_structs(node[1], node[2])
        self._number(made)
        return made

    def _struct_deque(self, node: list[Any]) -> deque[Any]:
        _, maxlen, names, data = node
        if maxlen is not None and (type(maxlen) is not int or maxlen < 0):
            raise StateFormatError(f"deque maxlen {maxlen!r}")
        made: deque[Any] = self._number(deque(maxlen=maxlen))
        made.extend(self._decode_structs(names, data))
        return made

    def _decode_structs(self, names: Any, data: Any) -> list[Any]:
        if type(names) is not list or not names or type(data) is not bytes:
            raise StateFormatError("structs without their class names or bytes")
        kinds = tuple(self.classes.structs[name] for name in names)
        items: Any = list[Union[kinds]]  # type: ignore[valid-type]  # noqa: UP007
        made: list[Any] = msgspec.msgpack.decode(data, type=items)
        return made

    def _counter(self, node: list[Any]) -> Counter[Any]:
        made: Counter[Any] = self._number(Counter())
        made.update(dict(zip(self.values(node[1]), self.values(node[2]), strict=True)))
        return made

    def _deque(self, node: list[Any]) -> deque[Any]:
        maxlen = node[1]
        if maxlen is not None and (type(maxlen) is not int or maxlen < 0):
            raise StateFormatError(f"deque maxlen {maxlen!r}")
        made: deque[Any] = self._number(deque(maxlen=maxlen))
        made.extend(self.values(node[2]))
        return made

    def _array(self, node: list[Any]) -> Any:
        _, dtype, shape, data = node
        if type(data) is not bytes or not all(type(n) is int for n in shape):
            raise StateFormatError("an array without bytes or an integer shape")
        array = np.frombuffer(bytearray(data), dtype=_numeric(dtype)).reshape(shape)
        return self._number(array)

    def _std_array(self, node: list[Any]) -> Any:
        _, typecode, data = node
        if type(typecode) is not str or typecode not in _TYPECODES or type(data) is not bytes:
            raise StateFormatError("an array.array without a numeric type code or bytes")
        made = array(typecode)
        if len(data) % made.itemsize:
            raise StateFormatError("an array.array's bytes are not whole items")
        made.frombytes(data)
        return self._number(made)

    def _object(self, node: list[Any]) -> object:
        _, name, attributes = node
        cls = self.classes.objects.get(name) if type(name) is str else None
        if cls is None:
            raise StateFormatError(f"{name!r} is not an allowed class")
        if type(attributes) is not dict:
            raise StateFormatError(f"{name}: attributes are not a map")
        made = self._number(object.__new__(cls))
        for attribute, value in attributes.items():
            if type(attribute) is not str or attribute.startswith("__"):
                raise StateFormatError(f"{name}: attribute {attribute!r}")
            object.__setattr__(made, attribute, self.value(value))
        return made

    def _stated(self, node: list[Any]) -> object:
        _, name, state = node
        cls = self.classes.objects.get(name) if type(name) is str else None
        if cls is None or not _own_state(cls):
            raise StateFormatError(f"{name!r} is not an allowed class with its own state")
        made = self._number(object.__new__(cls))
        made.__setstate__(self.value(state))
        return made


def _numeric(dtype: Any) -> np.dtype[Any]:
    if type(dtype) is not str:
        raise StateFormatError(f"dtype {dtype!r}")
    made = np.dtype(dtype)
    if made.kind not in _NUMERIC_KINDS:
        raise StateFormatError(f"dtype {dtype!r} is not numeric")
    return made
