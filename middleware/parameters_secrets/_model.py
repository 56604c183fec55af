"""Typed config: a pydantic model whose fields carry declarations, validated once per change.

Imported only by :meth:`ParametersSecrets.from_model`, and it imports pydantic only inside
its functions: ``import parameters_secrets`` never loads pydantic.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._context import Values
from ._declarations import Declaration, Parameter, ParametersByPath, Secret
from ._settings import Settings, logger
from ._sources import Source
from ._store import ParametersSecrets
from .exceptions import ConfigurationError, FetchError, LoadError

if TYPE_CHECKING:
    from pydantic import BaseModel

M = TypeVar("M", bound="BaseModel")

VALIDATION_FAILED = "ValidationFailed"
_DECLARATIONS = (Parameter, Secret, ParametersByPath)


class TypedParametersSecrets(ParametersSecrets, Generic[M]):
    """A :class:`ParametersSecrets` store built from a pydantic model class: its declared
    fields are the store's keys, and :meth:`model` gives the validated model. Made by
    :meth:`ParametersSecrets.from_model`."""

    def __init__(
        self,
        model: type[M],
        *,
        source: Source | None = None,
        settings: Settings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        declarations, input_keys = declared_fields(model)
        super().__init__(declarations, source=source, settings=settings, clock=clock)
        self._models: ValidatedModels[M] = ValidatedModels(model, input_keys)

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, model={self._models.model.__name__})"

    async def model(self) -> M:
        """The validated model of the current values: the same instance while no value
        changed; loads the values first where they are not cached.

        Raises:
            LoadError: A value could not be loaded, or (with no previous model) a value
                fails validation: its failures name the field and pydantic's error type.
        """
        values = await self.load()
        return self._models.model_for(values, self._fresh_snapshot())

    def model_sync(self) -> M:
        """:meth:`model` for code with no running event loop (a Flask view, a plain
        handler, module level at INIT)."""
        return self._models.model_for(self.load_sync(), self._fresh_snapshot())

    def drop_after_restore(self) -> None:
        super().drop_after_restore()
        self._models.forget()  # a model holds values loaded before the snapshot


def declared_fields(model: type[Any]) -> tuple[dict[str, Declaration], dict[str, str]]:
    """The store's declarations (key: the field's name) and the key under which each
    declared field's value is passed to pydantic (its alias, if it has one).

    Raises:
        ConfigurationError: ``model`` is not a pydantic model class, declares nothing, or a
            field has two declarations, a declaration and a default, an alias path, or no
            declaration and no default (nothing could ever fill it).
    """
    _check_model(model)
    declarations: dict[str, Declaration] = {}
    input_keys: dict[str, str] = {}
    by_name = model.model_config.get("validate_by_alias", True) is False
    for name, field in model.model_fields.items():
        declaration = _declaration_of(model, name, field)
        if declaration is None:
            continue
        declarations[name] = declaration
        input_keys[name] = name if by_name else _input_key(model, name, field)
    if not declarations:
        raise ConfigurationError(
            f"{model.__name__} declares no value: annotate a field with a Parameter, Secret or "
            "ParametersByPath, e.g. api_key: Annotated[SecretStr, Parameter('/app/api-key')]"
        )
    return declarations, input_keys


def _check_model(model: object) -> None:
    """Refuse what is not a pydantic model class."""
    from pydantic import BaseModel

    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise ConfigurationError(
            f"from_model() takes a pydantic model class (a BaseModel subclass), not {model!r}"
        )


def _declaration_of(model: type[BaseModel], name: str, field: Any) -> Declaration | None:
    found = [item for item in field.metadata if isinstance(item, _DECLARATIONS)]
    where = f"{model.__name__}.{name}"
    if len(found) > 1:
        raise ConfigurationError(
            f"field {where} has {len(found)} declarations "
            f"({', '.join(type(d).__name__ for d in found)}): give it one"
        )
    _check_default(where, field, declared=bool(found))
    declaration: Declaration | None = found[0] if found else None
    return declaration


def _check_default(where: str, field: Any, *, declared: bool) -> None:
    """A field has a declaration or a default: one of them, never both."""
    if not declared and field.is_required():
        raise ConfigurationError(
            f"field {where} has neither a declaration nor a default: nothing would fill "
            "it (annotate it with a Parameter, Secret or ParametersByPath, or give it "
            "a default)"
        )
    if declared and not field.is_required():
        # The store always gives a declared field a value (or the declaration's default),
        # so a field default would never apply: say so rather than ignore it.
        raise ConfigurationError(
            f"field {where} has a default and a declaration: the default would never be "
            "used; for a value that may not exist, give the default to the declaration "
            "(required=False, default=...)"
        )


def _input_key(model: type[BaseModel], name: str, field: Any) -> str:
    alias = field.validation_alias
    if alias is None:
        return name
    if isinstance(alias, str):
        return alias
    raise ConfigurationError(
        f"field {model.__name__}.{name} has a declaration and a validation alias of "
        f"{type(alias).__name__}: its value comes from the store, so give it no alias or "
        "a plain string one"
    )


class _Validated(Generic[M]):
    """The values a model was validated from, and that model. Its repr shows neither: a
    model's plain ``str`` fields show their values."""

    __slots__ = ("model", "values")

    def __init__(self, values: Values, model: M) -> None:
        self.values = values
        self.model = model

    def __repr__(self) -> str:
        return f"<validated {type(self.model).__name__}>"


class ValidatedModels(Generic[M]):
    """The model of the newest values, validated once per change of a value.

    Any thread may ask at once: two threads may both validate the same new values (each
    gets an equal model), but the one kept is always of the store's newest values, and a
    caller never gets a model of values other than the ones it loaded.
    """

    def __init__(self, model: type[M], input_keys: Mapping[str, str]) -> None:
        self.model = model
        self._input_keys = dict(input_keys)
        self._fields = {key: name for name, key in self._input_keys.items()}
        self._lock = threading.Lock()
        self._kept: _Validated[M] | None = None
        self._rejected: Values | None = None  # the last values that failed, if any

    def __repr__(self) -> str:
        return f"<ValidatedModels {self.model.__name__}>"

    def forget(self) -> None:
        with self._lock:
            self._kept = None
            self._rejected = None

    def model_for(self, values: Values, newest: Values | None) -> M:
        """The model of ``values``; ``newest`` is the store's newest values (its warm
        snapshot), if it has fresh ones, to know which model to keep."""
        kept = self._kept
        if kept is not None:
            if kept.values is values or values is self._rejected:
                return kept.model  # the warm path; or values that failed (warned then)
            if same_values(kept.values, values):  # refetched, and unchanged
                self._keep(values, kept.model, newest)  # next time: one identity check
                return kept.model
        model, failures = self._validate(values)
        if model is not None:
            self._keep(values, model, newest)
            return model
        return self._previous_or_raise(values, failures)

    def _keep(self, values: Values, model: M, newest: Values | None) -> None:
        with self._lock:
            if newest is None or newest is values or same_values(newest, values):
                self._kept = _Validated(values, model)
                self._rejected = None

    def _previous_or_raise(self, values: Values, failures: dict[str, FetchError]) -> M:
        described = "; ".join(str(error) for error in failures.values())
        kept = self._kept
        if kept is None:
            logger.error("values do not validate: %s", described)
            raise LoadError(failures)
        # As for a refreshed value that fails its transform: the previous one, served stale.
        logger.warning(
            "refreshed values do not validate: %s; serving the previous model", described
        )
        with self._lock:
            self._rejected = values
        return kept.model

    def _validate(self, values: Values) -> tuple[M | None, dict[str, FetchError]]:
        """The model, or the failures per field. The input and pydantic's error (whose
        message and ``errors()`` quote the input) never leave this function: the failures
        are built from each error's location and type alone, and nothing is chained."""
        from pydantic import ValidationError

        data = {self._input_keys[key]: values[key] for key in self._input_keys}
        try:
            return self.model.model_validate(data), {}
        except ValidationError as error:
            return None, self._failures(error)

    def _failures(self, error: Any) -> dict[str, FetchError]:
        types: dict[str, list[str]] = {}
        for detail in error.errors():
            kinds = types.setdefault(self._field_of(detail), [])
            if detail["type"] not in kinds:
                kinds.append(detail["type"])
        return {
            field: FetchError(
                f"field {field!r} of {self.model.__name__} failed validation ({', '.join(kinds)})",
                code=VALIDATION_FAILED,
            )
            for field, kinds in types.items()
        }

    def _field_of(self, detail: dict[str, Any]) -> str:
        """The field one of pydantic's error details is about (``__model__``: the model as
        a whole)."""
        location = detail.get("loc") or ()
        return self._fields.get(location[0], str(location[0])) if location else "__model__"


def same_values(one: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    """Whether two sets of values would validate alike: equal, with equal types all the
    way down (``1 == True`` but a strict ``int`` field refuses ``True``)."""
    return one.keys() == other.keys() and all(_same(one[key], other[key]) for key in one)


def _same(one: Any, other: Any) -> bool:
    if one is other:
        return True
    if type(one) is not type(other):
        return False
    if isinstance(one, dict):
        return same_values(one, other)
    if isinstance(one, (list, tuple)):
        return len(one) == len(other) and all(map(_same, one, other))
    return bool(one == other)
