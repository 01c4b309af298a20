"""`frozen_dataclass` behaves as `@dataclass(frozen=True, slots=True)` does (issue 15).

Every kitty value class is made by it, so each behaviour here is checked against the real
`dataclasses` making the same class: same equality, hash, repr, pickling, errors and messages.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
import subprocess
import sys
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from kitty_filelock import frozen_dataclass, frozen_field, frozen_field_names, frozen_replace

Maker = Callable[[type], type]


def real(cls: type) -> type:
    made: type = dataclasses.dataclass(frozen=True, slots=True)(cls)
    return made


def ours(cls: type) -> type:
    return frozen_dataclass(cls)


def make_point(decorate: Maker) -> Any:
    # The same body for both makers, each given its own field specifier.
    field: Any = frozen_field if decorate is ours else dataclasses.field

    class Point:
        x: int
        y: int = 0
        tags: tuple[str, ...] = field(default_factory=tuple)

        def norm(self) -> int:
            return abs(self.x) + abs(self.y)

    return decorate(Point)


BOTH = pytest.mark.parametrize("decorate", [real, ours], ids=["dataclasses", "frozen_dataclass"])


def test_points_made_both_ways_agree_on_value_semantics() -> None:
    Real, Ours = make_point(real), make_point(ours)
    cases: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        ((1,), {}),
        ((1, 2), {}),
        ((), {"x": 3, "y": 4}),
        ((5,), {"tags": ("a",)}),
    ]
    for args, kwargs in cases:
        a, b = Real(*args, **kwargs), Ours(*args, **kwargs)
        assert repr(a) == repr(b)
        assert (a.x, a.y, a.tags) == (b.x, b.y, b.tags)
        assert a.norm() == b.norm()
        assert hash(a) == hash(b)
    assert Ours(1, 2) == Ours(1, 2)
    assert Ours(1, 2) != Ours(1, 3)
    assert Ours(1, 2) != Real(1, 2)  # another class is never equal, as with dataclasses
    assert len({Ours(1, 2), Ours(1, 2), Ours(2, 1)}) == 2
    assert Ours.__match_args__ == Real.__match_args__ == ("x", "y", "tags")
    assert Ours.__qualname__ == Real.__qualname__ == "make_point.<locals>.Point"
    assert Ours.__init__.__qualname__ == "make_point.<locals>.Point.__init__"
    # The functions every class shares keep their own names (pickle finds them by name).
    assert frozen_replace.__qualname__ == "frozen_replace"
    assert pickle.loads(pickle.dumps(frozen_replace)) is frozen_replace  # noqa: S301
    assert Ours.__slots__ == ("x", "y", "tags")
    assert not hasattr(Ours(1), "__dict__")
    assert frozen_field_names(Ours) == frozen_field_names(Ours(1)) == ("x", "y", "tags")


def test_a_default_factory_makes_a_fresh_value_each_time() -> None:
    @frozen_dataclass
    class Box:
        items: list[int] = frozen_field(default_factory=list)

    first, second = Box(), Box()
    assert first.items == []
    assert first.items is not second.items


@BOTH
def test_assigning_or_deleting_a_field_raises_the_stdlib_error(decorate: Maker) -> None:
    point = make_point(decorate)(1)
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'x'"):
        point.x = 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        del point.y
    assert point.x == 1


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((), {}),
        ((1, 2, (), 4), {}),
        ((1,), {"x": 1}),
        ((1,), {"z": 1}),
        ((), {"y": 1}),
    ],
    ids=["missing", "too-many", "twice", "unknown", "missing-with-keyword"],
)
def test_bad_arguments_raise_the_type_error_dataclasses_raises(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    messages = []
    for decorate in (real, ours):
        with pytest.raises(TypeError) as caught:
            make_point(decorate)(*args, **kwargs)
        messages.append(str(caught.value).replace("make_point.<locals>.", ""))
    assert messages[0] == messages[1]


@pytest.mark.parametrize("missing", [2, 3])
def test_several_missing_arguments_are_named_as_python_names_them(missing: int) -> None:
    names = ["a", "b", "c"][:missing]
    messages = []
    for decorate in (real, ours):
        cls = decorate(type("Many", (), {"__annotations__": dict.fromkeys(names, "int")}))
        with pytest.raises(TypeError) as caught:
            cls()
        messages.append(str(caught.value))
    assert messages[0] == messages[1]


@BOTH
def test_post_init_runs_on_construction_and_on_replace(decorate: Maker) -> None:
    seen: list[int] = []

    class Checked:
        value: int

        def __post_init__(self) -> None:
            if self.value < 0:
                raise ValueError("value must not be negative")
            seen.append(self.value)

    cls = decorate(Checked)
    item = cls(1)
    with pytest.raises(ValueError, match="negative"):
        cls(-1)
    changed = (
        frozen_replace(item, value=2) if decorate is ours else dataclasses.replace(item, value=2)
    )
    assert changed.value == 2
    assert item.value == 1
    with pytest.raises(ValueError, match="negative"):
        frozen_replace(item, value=-5) if decorate is ours else dataclasses.replace(item, value=-5)
    assert seen == [1, 2]


def test_methods_of_the_body_win_over_the_generated_ones() -> None:
    @frozen_dataclass
    class Secret:
        token: str

        def __repr__(self) -> str:
            return "Secret(token=<redacted>)"

    assert repr(Secret("s3cr3t")) == "Secret(token=<redacted>)"
    assert "s3cr3t" not in str(Secret("s3cr3t"))


def test_zero_argument_super_works_in_methods_properties_and_classmethods() -> None:
    # super() reads the method's __class__ cell: it must name the class frozen_dataclass made.
    @frozen_dataclass
    class Named:
        name: str

        def __post_init__(self) -> None:
            super().__setattr__("name", self.name.strip())  # how a frozen class normalises

        @property
        def shown(self) -> str:
            return super().__repr__()[:1] + self.name

        @classmethod
        def make(cls) -> Named:
            super().__init_subclass__()  # TypeError if the cell named the discarded class
            return cls(" x ")

    item = Named.make()
    assert item.name == "x"
    assert item.shown == "<x"


def test_repr_compare_and_hash_options_are_honoured() -> None:
    @frozen_dataclass
    class Entry:
        key: str
        secret: str = frozen_field(default="", repr=False)
        note: str = frozen_field(default="", compare=False)
        cached: int = frozen_field(default=0, hash=False)

    a, b = Entry("k", "one", "x", 1), Entry("k", "one", "y", 2)
    assert repr(a).endswith(".<locals>.Entry(key='k', note='x', cached=1)")
    assert "one" not in repr(a)
    assert a != b  # cached still compares
    assert Entry("k", "one", "x", 1) == Entry("k", "one", "other", 1)
    assert hash(a) == hash(b)  # neither note nor cached is hashed


def test_hash_follows_the_dataclasses_rule_for_a_body_that_defines_eq_or_hash() -> None:
    @frozen_dataclass
    class OwnEq:
        value: int

        def __eq__(self, other: object) -> bool:
            return isinstance(other, OwnEq)

    @frozen_dataclass
    class OwnHash:
        value: int

        def __hash__(self) -> int:
            return 7

    assert OwnEq(1) == OwnEq(2)  # its own __eq__ stays
    assert hash(OwnEq(1)) == hash((1,))  # Python's implicit None is replaced, as dataclasses does
    assert hash(OwnHash(1)) == 7


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_instances_pickle_and_copy(protocol: int) -> None:
    point = POINT(3, 4, ("a",))
    assert pickle.loads(pickle.dumps(point, protocol)) == point  # noqa: S301 - our own bytes
    assert copy.copy(point) == point
    deep = copy.deepcopy(point)
    assert deep == point
    assert deep is not point


@frozen_dataclass
class Pickled:
    """Module level, so pickle can find it."""

    x: int
    y: int = 0
    tags: tuple[str, ...] = ()


POINT = Pickled


def test_the_dataclasses_functions_read_true_facts() -> None:
    item = POINT(1, 2, ("t",))
    assert dataclasses.is_dataclass(POINT)
    assert dataclasses.is_dataclass(item)
    assert [f.name for f in dataclasses.fields(item)] == ["x", "y", "tags"]
    assert [f.default for f in dataclasses.fields(POINT)][1:] == [0, ()]
    assert dataclasses.asdict(item) == {"x": 1, "y": 2, "tags": ("t",)}
    assert dataclasses.astuple(item) == (1, 2, ("t",))
    assert dataclasses.replace(item, y=9) == POINT(1, 9, ("t",))  # type: ignore[call-arg]
    assert POINT.__dataclass_params__.frozen  # type: ignore[attr-defined]


def test_help_and_inspect_see_the_signature_dataclasses_would_give() -> None:
    import inspect

    Real, Ours = make_point(real), make_point(ours)
    assert str(inspect.signature(Ours)) == str(inspect.signature(Real))
    assert (
        str(inspect.signature(Ours))
        == "(x: 'int', y: 'int' = 0, tags: 'tuple[str, ...]' = <factory>) -> None"
    )
    assert inspect.signature(Ours).bind(1, y=2).arguments == {"x": 1, "y": 2}


def test_replace_is_the_copy_replace_protocol() -> None:
    # Python 3.13's copy.replace(obj, **changes) calls __replace__, which dataclasses define.
    item = POINT(1, 2)
    assert item.__replace__(y=5) == POINT(1, 5)  # type: ignore[attr-defined]
    if sys.version_info >= (3, 13):
        assert copy.replace(item, x=7) == POINT(7, 2)  # type: ignore[attr-defined]


def test_frozen_replace_refuses_unknown_fields_and_non_frozen_dataclasses() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'z'"):
        frozen_replace(POINT(1), z=2)
    with pytest.raises(TypeError, match="is not a frozen_dataclass"):
        frozen_field_names(object())
    with pytest.raises(TypeError, match="is not a frozen_dataclass"):
        frozen_replace(make_point(real)(1), x=2)


def test_what_it_cannot_make_is_refused_when_the_class_is_made() -> None:
    class Base:
        pass

    class Child(Base):
        x: int

    with pytest.raises(TypeError, match="takes no base classes"):
        frozen_dataclass(Child)

    class WithClassVar:
        limit: ClassVar[int] = 3

    with pytest.raises(TypeError, match="no ClassVar/InitVar"):
        frozen_dataclass(WithClassVar)

    class MutableDefault:
        items: list[int] = []  # noqa: RUF012 - the mistake under test

    with pytest.raises(ValueError, match="mutable default list is not allowed"):
        frozen_dataclass(MutableDefault)

    class Order:
        a: int = 1
        b: int

    with pytest.raises(TypeError, match="non-default argument 'b' follows default argument"):
        frozen_dataclass(Order)

    with pytest.raises(ValueError, match="both default and default_factory"):
        frozen_field(default=1, default_factory=int)  # type: ignore[call-overload]


def test_making_and_using_a_class_never_imports_dataclasses() -> None:
    # The reason it exists: the default `kitty-doctor --json` path must not pay for dataclasses.
    probe = (
        "import sys\n"
        "from kitty_filelock import frozen_dataclass, frozen_field, frozen_replace\n"
        "@frozen_dataclass\n"
        "class A:\n"
        "    x: int\n"
        "    y: tuple[int, ...] = frozen_field(default_factory=tuple)\n"
        "a = frozen_replace(A(1), x=2)\n"
        "assert {a: 1}[A(2)] == 1 and repr(a) == 'A(x=2, y=())'\n"
        "print(sorted({'dataclasses', 'inspect'} & set(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "[]"
