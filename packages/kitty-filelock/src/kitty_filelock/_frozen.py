"""Frozen value classes without the start-up cost of ``dataclasses`` (issue 15: a light first run).

``@dataclass`` compiles each generated method with ``exec`` and asks ``inspect`` for a signature:
about 0.6 ms a class, and the default ``kitty-doctor --json`` path defines some fifty of them, a
third of its cold start. ``frozen_dataclass`` builds the same frozen, slotted value class out of
closures, with no compiling, and it stays a dataclass to everything that asks: type checkers read
it through ``typing.dataclass_transform``, and ``dataclasses.fields/replace/asdict/is_dataclass``
work because ``__dataclass_fields__`` is made by the real ``dataclasses`` the first time someone
asks for it (whoever asks has imported ``dataclasses`` already).

What a class may use: annotated fields, plain defaults or ``frozen_field(...)``, ``__post_init__``,
and methods, properties and class constants of its own (which win over the generated ones, as
with ``dataclasses``). What it may not (refused when the class is made, never half-supported):
base classes, ``ClassVar``/``InitVar`` annotations, a mutable default. Package plumbing for
kitty's packages, like ``lazy_exports``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any, TypeVar, dataclass_transform, overload

__all__ = ["frozen_dataclass", "frozen_field", "frozen_field_names", "frozen_replace"]

_T = TypeVar("_T")


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


class _FieldSpec:
    """What ``frozen_field`` says of one field (also what a plain default becomes)."""

    __slots__ = ("compare", "default", "factory", "hash", "repr")

    def __init__(
        self, default: Any, factory: Any, repr: bool, compare: bool, hash: bool | None
    ) -> None:
        self.default = default
        self.factory = factory
        self.repr = repr
        self.compare = compare
        self.hash = compare if hash is None else hash

    @property
    def required(self) -> bool:
        return self.default is _MISSING and self.factory is _MISSING


@overload
def frozen_field(
    *, default: _T, repr: bool = True, compare: bool = True, hash: bool | None = None
) -> _T: ...
@overload
def frozen_field(
    *,
    default_factory: Callable[[], _T],
    repr: bool = True,
    compare: bool = True,
    hash: bool | None = None,
) -> _T: ...
@overload
def frozen_field(*, repr: bool = True, compare: bool = True, hash: bool | None = None) -> Any: ...
def frozen_field(
    *,
    default: Any = _MISSING,
    default_factory: Any = _MISSING,
    repr: bool = True,
    compare: bool = True,
    hash: bool | None = None,
) -> Any:
    """One field's options, as ``dataclasses.field`` takes them (``hash=None``: as ``compare``)."""
    if default is not _MISSING and default_factory is not _MISSING:
        raise ValueError("cannot specify both default and default_factory")
    return _FieldSpec(default, default_factory, repr, compare, hash)


def frozen_field_names(cls_or_instance: object) -> tuple[str, ...]:
    """The fields of a ``frozen_dataclass``, in order (``dataclasses.fields`` without importing
    ``dataclasses``)."""
    names: tuple[str, ...] | None = getattr(cls_or_instance, "__frozen_fields__", None)
    if names is None:
        raise TypeError(f"{cls_or_instance!r} is not a frozen_dataclass")
    return names


def frozen_replace(obj: _T, /, **changes: Any) -> _T:
    """A copy of a ``frozen_dataclass`` instance with ``changes`` (``dataclasses.replace``,
    ``__post_init__`` included, without importing ``dataclasses``)."""
    values = {name: getattr(obj, name) for name in frozen_field_names(obj)}
    values.update(changes)
    return type(obj)(**values)


@dataclass_transform(frozen_default=True, field_specifiers=(frozen_field,))
def frozen_dataclass(cls: type[_T]) -> type[_T]:
    """``@dataclass(frozen=True, slots=True)``, made without compiling anything."""
    if cls.__bases__ != (object,):
        raise TypeError(f"{cls.__qualname__}: a frozen_dataclass takes no base classes")
    body = dict(cls.__dict__)
    names, specs = _fields(cls.__qualname__, body)
    for name in ("__dict__", "__weakref__"):
        body.pop(name, None)
    body.update(__slots__=names, __match_args__=names, __frozen_fields__=names)
    body["__qualname__"] = cls.__qualname__
    made = type(cls.__name__, (), body)
    _rebind_class_cell(cls, made, body)
    _install(made, body, names, specs)
    return made


def _rebind_class_cell(old: type, new: type, body: dict[str, Any]) -> None:
    """Point each method's ``__class__`` cell (what zero-argument ``super()`` reads) at the class
    that replaces the one the body was compiled for, or ``super()`` would refuse every instance."""
    for value in body.values():
        for fn in (value, *(getattr(value, a, None) for a in ("__func__", "fget", "fset"))):
            code = getattr(fn, "__code__", None)
            if code is None or "__class__" not in code.co_freevars:
                continue
            cell = fn.__closure__[code.co_freevars.index("__class__")]
            if cell.cell_contents is old:
                cell.cell_contents = new


def _fields(qualname: str, body: dict[str, Any]) -> tuple[tuple[str, ...], list[_FieldSpec]]:
    names: list[str] = []
    specs: list[_FieldSpec] = []
    for name, annotation in body.get("__annotations__", {}).items():
        text = annotation if isinstance(annotation, str) else repr(annotation)
        if any(word in text for word in ("ClassVar", "InitVar")):
            raise TypeError(f"{qualname}.{name}: a frozen_dataclass has no ClassVar/InitVar fields")
        value = body.pop(name, _MISSING)
        spec = (
            value
            if isinstance(value, _FieldSpec)
            else _FieldSpec(value, _MISSING, True, True, None)
        )
        if spec.default is not _MISSING and type(spec.default).__hash__ is None:
            raise ValueError(
                f"{qualname}.{name}: mutable default {type(spec.default).__name__} is not "
                "allowed: use default_factory"
            )
        if spec.required and specs and not specs[-1].required:
            raise TypeError(f"{qualname}: non-default argument {name!r} follows default argument")
        names.append(name)
        specs.append(spec)
    return tuple(names), specs


def _install(
    cls: type, body: dict[str, Any], names: tuple[str, ...], specs: list[_FieldSpec]
) -> None:
    """Give ``cls`` every method ``dataclass(frozen=True, slots=True)`` would, unless its body
    defines one of its own."""
    setters = [cls.__dict__[name].__set__ for name in names]
    methods: dict[str, Any] = {
        "__init__": _init(
            cls.__qualname__, names, specs, setters, getattr(cls, "__post_init__", None)
        ),
        "__repr__": _repr(
            cls.__qualname__, [n for n, s in zip(names, specs, strict=True) if s.repr]
        ),
        "__eq__": _eq(_key([n for n, s in zip(names, specs, strict=True) if s.compare])),
        "__getstate__": _getstate(_key(list(names))),
        "__setstate__": _setstate(setters),
    }
    # As dataclasses decides: a body's own __hash__ stays, unless it is the None Python puts
    # there for a class that defines __eq__ alone.
    own_hash = body.get("__hash__", _MISSING)
    if own_hash is _MISSING or (own_hash is None and "__eq__" in body):
        hashed = _key([n for n, s in zip(names, specs, strict=True) if s.hash])
        methods["__hash__"] = lambda self: hash(hashed(self))
        body.pop("__hash__", None)
    for name, method in methods.items():
        method.__qualname__ = f"{cls.__qualname__}.{name}"
    # Shared by every class, so never renamed for one of them.
    methods.update(
        __setattr__=_refuse_setattr,
        __delattr__=_refuse_delattr,
        __replace__=frozen_replace,  # copy.replace (Python 3.13), as dataclasses gives it
    )
    for name, method in methods.items():
        if name not in body:
            setattr(cls, name, method)
    table = _FieldTable(cls.__module__, cls.__qualname__, body, names, specs)
    type.__setattr__(cls, "__dataclass_fields__", table)
    type.__setattr__(cls, "__dataclass_params__", _Params(table))
    if "__signature__" not in body:
        type.__setattr__(cls, "__signature__", _Signature(body, names, specs))


def _key(names: Sequence[str]) -> Callable[[Any], tuple[Any, ...]]:
    """The values of ``names`` of an instance, as a tuple (what eq, hash and pickle compare)."""
    if not names:
        return lambda self: ()
    if len(names) == 1:
        one = attrgetter(names[0])
        return lambda self: (one(self),)
    return attrgetter(*names)


def _init(
    qualname: str,
    names: tuple[str, ...],
    specs: list[_FieldSpec],
    setters: list[Callable[[Any, Any], None]],
    post_init: Callable[[Any], None] | None,
) -> Callable[..., None]:
    count = len(names)
    index = {name: i for i, name in enumerate(names)}
    required = sum(spec.required for spec in specs)  # a prefix: _fields refuses the rest
    template = [spec.default for spec in specs]
    factories = [(i, spec.factory) for i, spec in enumerate(specs) if spec.factory is not _MISSING]
    where = f"{qualname}.__init__()"

    # The argument errors say what CPython says of the __init__ dataclasses would compile.
    takes = f"{required + 1}" if required == count else f"from {required + 1} to {count + 1}"

    def bind(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
        given = len(args)
        if given > count:
            raise TypeError(
                f"{where} takes {takes} positional arguments but {given + 1} were given"
            )
        values = template.copy()
        values[:given] = args
        for key, value in kwargs.items():
            i = index.get(key)
            if i is None:
                raise TypeError(f"{where} got an unexpected keyword argument {key!r}")
            if i < given:
                raise TypeError(f"{where} got multiple values for argument {key!r}")
            values[i] = value
        for i, factory in factories:
            if values[i] is _MISSING:
                values[i] = factory()
        missing = [repr(names[i]) for i in range(given, required) if values[i] is _MISSING]
        if missing:
            raise TypeError(
                f"{where} missing {len(missing)} required positional "
                f"argument{'s' * (len(missing) > 1)}: {_spoken(missing)}"
            )
        return values

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        values = args if len(args) == count and not kwargs else bind(args, kwargs)
        for set_value, value in zip(setters, values, strict=True):
            set_value(self, value)
        if post_init is not None:
            post_init(self)

    return __init__


def _spoken(names: list[str]) -> str:
    """``'a'``, ``'a' and 'b'``, ``'a', 'b', and 'c'``: a list as CPython's errors write it."""
    if len(names) < 3:
        return " and ".join(names)
    return ", ".join(names[:-1]) + ", and " + names[-1]


def _repr(qualname: str, shown: list[str]) -> Callable[[Any], str]:
    getters = [(f"{name}=", attrgetter(name)) for name in shown]

    def __repr__(self: Any) -> str:
        return f"{qualname}({', '.join(label + repr(get(self)) for label, get in getters)})"

    return __repr__


def _eq(key: Callable[[Any], tuple[Any, ...]]) -> Callable[[Any, object], Any]:
    def __eq__(self: Any, other: object) -> Any:
        if other.__class__ is self.__class__:
            return key(self) == key(other)
        return NotImplemented

    return __eq__


def _getstate(key: Callable[[Any], tuple[Any, ...]]) -> Callable[[Any], tuple[Any, ...]]:
    def __getstate__(self: Any) -> tuple[Any, ...]:
        return key(self)

    return __getstate__


def _setstate(setters: list[Callable[[Any, Any], None]]) -> Callable[[Any, Any], None]:
    def __setstate__(self: Any, state: Any) -> None:
        for set_value, value in zip(setters, state, strict=True):
            set_value(self, value)

    return __setstate__


def _frozen_error(name: str) -> AttributeError:
    # Imported here, on the error path only: the type callers catch is the stdlib's.
    from dataclasses import FrozenInstanceError

    return FrozenInstanceError(f"cannot assign to field {name!r}")


def _refuse_setattr(self: Any, name: str, value: object) -> None:
    raise _frozen_error(name)


def _refuse_delattr(self: Any, name: str) -> None:
    raise _frozen_error(name)


class _FieldTable:
    """A class's ``__dataclass_fields__``, made by the real ``dataclasses`` on first access from a
    twin class with the same fields, so every ``dataclasses`` function reads true facts."""

    def __init__(
        self,
        module: str,
        qualname: str,
        body: dict[str, Any],
        names: tuple[str, ...],
        specs: list[_FieldSpec],
    ) -> None:
        annotations = body.get("__annotations__", {})
        self._twin_body: dict[str, Any] = {
            "__module__": module,
            "__qualname__": qualname,
            "__annotations__": {name: annotations[name] for name in names},
        }
        self._specs = dict(zip(names, specs, strict=True))
        self._made: tuple[dict[str, Any], Any] | None = None

    def made(self) -> tuple[dict[str, Any], Any]:
        if self._made is None:
            import dataclasses  # only for whoever asks, who has it already

            body = dict(self._twin_body)
            for name, spec in self._specs.items():
                body[name] = dataclasses.field(
                    default=dataclasses.MISSING if spec.default is _MISSING else spec.default,
                    default_factory=(
                        dataclasses.MISSING if spec.factory is _MISSING else spec.factory
                    ),
                    repr=spec.repr,
                    compare=spec.compare,
                    hash=spec.hash,
                )
            twin: Any = dataclasses.dataclass(frozen=True)(type(body["__qualname__"], (), body))
            self._made = (twin.__dataclass_fields__, twin.__dataclass_params__)
        return self._made

    def __get__(self, instance: object, owner: type | None = None) -> dict[str, Any]:
        return self.made()[0]


class _Params:
    """``__dataclass_params__``, from the same twin (read when someone subclasses a dataclass)."""

    def __init__(self, table: _FieldTable) -> None:
        self._table = table

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        return self._table.made()[1]


class _Factory:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<factory>"  # what dataclasses shows for a default_factory


class _Signature:
    """The class's call signature for ``inspect.signature``/``help()``: what dataclasses would
    show, made on first access (whoever asks has imported ``inspect`` already)."""

    def __init__(self, body: dict[str, Any], names: tuple[str, ...], specs: list[_FieldSpec]):
        annotations = body.get("__annotations__", {})
        self._fields = [
            (name, annotations[name], spec.default if spec.factory is _MISSING else _Factory())
            for name, spec in zip(names, specs, strict=True)
        ]

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        import inspect

        keyword = inspect.Parameter.POSITIONAL_OR_KEYWORD
        empty = inspect.Parameter.empty
        return inspect.Signature(
            [
                inspect.Parameter(
                    name, keyword, annotation=hint, default=empty if value is _MISSING else value
                )
                for name, hint, value in self._fields
            ],
            return_annotation=None,
        )
