"""What an app declares: SSM parameters and Secrets Manager secrets, and how to shape them."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ._frozen import FrozenDict, FrozenList, freeze
from ._json import InvalidJSON, loads
from .exceptions import ConfigurationError, FetchError

TransformName = Literal["json", "binary", "list"]
Transform = TransformName | Callable[[Any], Any] | None
Record = Mapping[str, Any]
"""What a source returns for one value: the AWS API's own JSON object (the ``Parameter``
of ``GetParameter``, or the whole ``GetSecretValue`` response)."""

TRANSFORMS: tuple[TransformName, ...] = ("json", "binary", "list")
MAX_DECLARATION_TTL = 3600


@dataclass(frozen=True)
class ParameterRequest:
    """The identity of one ``GetParameter`` call: the cache key for a parameter."""

    name: str
    version: int | None = None
    label: str | None = None
    decrypt: bool = True
    role_arn: str | None = None

    kind = "parameter"

    def describe(self) -> str:
        """The request as messages and logs name it: ``parameter NAME[:SELECTOR]``
        (``via role ARN`` when read through a role)."""
        selector = f":{self.version}" if self.version is not None else ""
        selector = f":{self.label}" if self.label is not None else selector
        return f"parameter {self.name}{selector}{_via(self.role_arn)}"


@dataclass(frozen=True)
class SecretRequest:
    """The identity of one ``GetSecretValue`` call: the cache key for a secret."""

    secret_id: str
    version_stage: str | None = None
    version_id: str | None = None
    role_arn: str | None = None
    # Part of the identity: a following value expires by other rules (and is read from
    # AWS directly), so it never shares an entry with one that does not follow.
    follow_rotation: bool = False

    kind = "secret"

    def describe(self) -> str:
        """The request as messages and logs name it: ``secret ID (STAGE) (VERSION)``
        (``following its rotation`` when it does; ``via role ARN`` when read through a
        role)."""
        selectors = [s for s in (self.version_stage, self.version_id) if s is not None]
        described = f"secret {self.secret_id}" + "".join(f" ({s})" for s in selectors)
        following = " following its rotation" if self.follow_rotation else ""
        return described + following + _via(self.role_arn)

    @property
    def pinned(self) -> bool:
        """Whether it asks for a version other than ``AWSCURRENT`` (a version id, or
        another stage): one that never rotates."""
        return self.version_id is not None or self.version_stage not in (None, "AWSCURRENT")


@dataclass(frozen=True)
class PathRequest:
    """The identity of one ``GetParametersByPath`` walk (every page): the cache key for a
    path. ``path`` has no trailing slash (but ``"/"`` itself)."""

    path: str
    recursive: bool = True
    decrypt: bool = True
    role_arn: str | None = None

    kind = "parameter"  # Parameter Store's: its TTL and its timeout setting

    def describe(self) -> str:
        """The request as messages and logs name it: ``parameters under PATH``."""
        recursion = "" if self.recursive else " (not recursive)"
        return f"parameters under {self.path}{recursion}{_via(self.role_arn)}"

    def relative_name(self, name: str) -> str | None:
        """``name`` relative to the path, without a leading slash (``"db/host"``); ``None``
        if it is not under the path, or (not recursive) not a direct child."""
        prefix = "/" if self.path == "/" else self.path + "/"
        if not name.startswith(prefix) or len(name) == len(prefix):
            return None
        relative = name[len(prefix) :]
        if not self.recursive and "/" in relative:
            return None
        return relative


ValueRequest = ParameterRequest | SecretRequest | PathRequest
"""What a source is asked for: one parameter, one secret, or one path (the cache key)."""

# An IAM role's ARN, as STS AssumeRole takes it: any partition, a 12-digit account, and a
# role name (letters, digits and +=,.@_-) after an optional path.
_ROLE_ARN = r"arn:aws[a-z-]{0,20}:iam::\d{12}:role/(?:[\w+=,.@-]+/){0,32}[\w+=,.@-]{1,64}"


def _via(role_arn: str | None) -> str:
    return "" if role_arn is None else f" via role {role_arn}"


def _check_role_arn(argument: str, role_arn: object) -> None:
    if role_arn is None:
        return
    if not isinstance(role_arn, str) or not re.fullmatch(_ROLE_ARN, role_arn, re.ASCII):
        raise ConfigurationError(
            f"{argument} must be an IAM role ARN (arn:aws:iam::123456789012:role/NAME) or "
            f"None, not {role_arn!r}"
        )


def _check_transform(transform: object) -> None:
    if transform is None or callable(transform) or transform in TRANSFORMS:
        return
    raise ConfigurationError(
        f"transform must be None, one of {', '.join(map(repr, TRANSFORMS))} or a callable, "
        f"not {transform!r}"
    )


def _check_ttl(ttl: object) -> None:
    if ttl is None:
        return
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 0 <= ttl <= 3600:
        raise ConfigurationError(
            f"ttl must be a number of seconds from 0 to {MAX_DECLARATION_TTL}, not {ttl!r}"
        )


def _check_flag(argument: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{argument} must be True or False, not {value!r}")


def _check_version(version: object) -> None:
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or version < 1
    ):
        raise ConfigurationError(f"Parameter version must be a positive integer, not {version!r}")


def _check_text(argument: str, value: object, *, optional: bool) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{argument} must be a non-empty string, not {value!r}")


@dataclass(frozen=True)
class Parameter:
    """An SSM Parameter Store parameter.

    Args:
        name: A name, a path (``/my-app/prod/key``), an ARN, a public ``/aws/service/...``
            parameter or a ``/aws/reference/secretsmanager/...`` reference.
        version: A version number to pin (not with ``label``).
        label: A label to pin (not with ``version``).
        decrypt: Decrypt a ``SecureString`` (``WithDecryption``).
        transform: ``None`` (the string as stored), ``"json"``, ``"binary"`` (base64 to
            bytes), ``"list"`` (a ``StringList`` to a list of str) or a callable.
        required: If false, a parameter that does not exist gives ``default`` instead of
            failing the request.
        default: The value for an optional parameter that does not exist.
        ttl: Seconds to cache this parameter (0 to 3600); ``None`` uses
            ``SSM_PARAMETER_STORE_TTL``.
        role_arn: An IAM role to read it as (another account's): the parameter is read
            from AWS directly with credentials from STS ``AssumeRole``.
    """

    name: str
    version: int | None = None
    label: str | None = None
    decrypt: bool = True
    transform: Transform = None
    required: bool = True
    default: Any = field(default=None, repr=False)
    ttl: float | None = None
    role_arn: str | None = None

    def __post_init__(self) -> None:
        _check_text("Parameter name", self.name, optional=False)
        _check_role_arn("Parameter role_arn", self.role_arn)
        _check_text("Parameter label", self.label, optional=True)
        _check_version(self.version)
        if self.version is not None and self.label is not None:
            raise ConfigurationError(
                f"Parameter {self.name!r}: give version or label, not both "
                "(GetParameter takes one selector)"
            )
        _check_flag("Parameter decrypt", self.decrypt)
        _check_flag("required", self.required)
        _check_transform(self.transform)
        _check_ttl(self.ttl)

    @property
    def request(self) -> ParameterRequest:
        """The cache key: everything that identifies the ``GetParameter`` call."""
        return ParameterRequest(self.name, self.version, self.label, self.decrypt, self.role_arn)


@dataclass(frozen=True)
class Secret:
    """A Secrets Manager secret.

    Args:
        secret_id: The secret's name or ARN.
        version_stage: A staging label (``AWSCURRENT``, ``AWSPREVIOUS``...).
        version_id: A version id. May be given with ``version_stage``.
        transform: As for :class:`Parameter`. A ``SecretBinary`` is bytes before it.
        required: If false, a secret that does not exist gives ``default``.
        default: The value for an optional secret that does not exist.
        ttl: Seconds to cache this secret (0 to 3600); ``None`` uses ``SECRETS_MANAGER_TTL``.
        role_arn: An IAM role to read it as (another account's): the secret is read from
            AWS directly with credentials from STS ``AssumeRole``.
        follow_rotation: Read it from AWS directly and expire it no later than its
            ``NextRotationDate``; after that date, revalidate it with ``DescribeSecret``
            every 30 s and fetch it again only when its ``AWSCURRENT`` version changed.
            Not with ``version_id`` or a ``version_stage`` other than ``AWSCURRENT``.
            With ``role_arn``, it is described with the role's credentials too.
    """

    secret_id: str
    version_stage: str | None = None
    version_id: str | None = None
    transform: Transform = None
    required: bool = True
    default: Any = field(default=None, repr=False)
    ttl: float | None = None
    role_arn: str | None = None
    follow_rotation: bool = False

    def __post_init__(self) -> None:
        _check_text("Secret secret_id", self.secret_id, optional=False)
        _check_role_arn("Secret role_arn", self.role_arn)
        _check_text("Secret version_stage", self.version_stage, optional=True)
        _check_text("Secret version_id", self.version_id, optional=True)
        _check_flag("required", self.required)
        _check_transform(self.transform)
        _check_ttl(self.ttl)
        _check_follow_rotation(self)

    @property
    def request(self) -> SecretRequest:
        """The cache key: everything that identifies the ``GetSecretValue`` call."""
        return SecretRequest(
            self.secret_id,
            self.version_stage,
            self.version_id,
            role_arn=self.role_arn,
            follow_rotation=self.follow_rotation,
        )


def _check_follow_rotation(secret: Secret) -> None:
    _check_flag("Secret follow_rotation", secret.follow_rotation)
    if secret.follow_rotation and secret.request.pinned:
        # A pinned version never changes: there is no rotation to follow.
        raise ConfigurationError(
            f"Secret {secret.secret_id!r}: follow_rotation follows AWSCURRENT; it cannot be "
            "combined with version_id or another version_stage (a pinned version never rotates)"
        )


@dataclass(frozen=True)
class ParametersByPath:
    """Every SSM parameter under a path (``GetParametersByPath``), as one value.

    The value is a read-only mapping of each parameter's name relative to the path,
    without a leading slash, to its value: under ``/app/prod``, ``/app/prod/db/host`` is
    ``"db/host"``. A path with no parameters gives an empty mapping.

    Args:
        path: The hierarchy, starting with ``/``; a trailing slash changes nothing.
        recursive: Every level below the path; ``False``: only its direct children.
        decrypt: Decrypt ``SecureString`` parameters.
        transform: Applied to each value, as for :class:`Parameter`.
        required: If false, a path that cannot be read gives an empty mapping instead of
            failing the request.
        ttl: Seconds to cache the whole path (0 to 3600); ``None`` uses
            ``SSM_PARAMETER_STORE_TTL``.
        role_arn: An IAM role to read it as (another account's), with credentials from
            STS ``AssumeRole``.
    """

    path: str
    recursive: bool = True
    decrypt: bool = True
    transform: Transform = None
    required: bool = True
    ttl: float | None = None
    role_arn: str | None = None

    def __post_init__(self) -> None:
        _check_role_arn("ParametersByPath role_arn", self.role_arn)
        _check_path(self.path)
        for flag in ("recursive", "decrypt", "required"):
            _check_flag(f"ParametersByPath {flag}", getattr(self, flag))
        _check_transform(self.transform)
        _check_ttl(self.ttl)

    @property
    def default(self) -> FrozenDict:
        """What an optional path that cannot be read gives: an empty mapping."""
        return FrozenDict()

    @property
    def request(self) -> PathRequest:
        """The cache key: the path (without a trailing slash), recursion and decryption."""
        return PathRequest(
            self.path.rstrip("/") or "/", self.recursive, self.decrypt, self.role_arn
        )


def _check_path(path: object) -> None:
    """Refuse a ``ParametersByPath`` path that is not a plain hierarchy from ``/``."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise ConfigurationError(
            f"ParametersByPath path must be a hierarchy starting with '/', not {path!r}"
        )
    if ":" in path or "//" in path:
        raise ConfigurationError(
            f"ParametersByPath path must be a plain hierarchy (no ':' or '//'), not {path!r}"
        )


Declaration = Parameter | Secret | ParametersByPath


def raw_value(record: Record) -> str | bytes:
    """The stored value in a record: a parameter's ``Value``, a secret's string or bytes."""
    if "Value" in record:
        return str(record["Value"])
    if record.get("SecretString") is not None:
        return str(record["SecretString"])
    binary = record.get("SecretBinary")
    if isinstance(binary, (bytes, bytearray)):
        return bytes(binary)
    if isinstance(binary, str):
        # JSON APIs (and the extension) send SecretBinary base64-encoded.
        return base64.b64decode(binary)
    raise ValueError("record has no value")


def apply_transform(declaration: Declaration, record: Record) -> Any:
    """Turn a record into what the app sees, read-only: for a path, a mapping of each
    parameter's relative name to its transformed value.

    Raises:
        FetchError: ``TransformFailed``. The message names the transform and the kind of
            failure (and for a path, the parameter), never the value, and the original
            exception is not chained because its message may quote the value.
    """
    if isinstance(declaration, ParametersByPath):
        request = declaration.request
        values = {}
        for parameter in record["Parameters"]:
            relative = request.relative_name(parameter["Name"])
            if relative is None:
                continue  # checked records hold none; a custom source's extra is left out
            try:
                values[relative] = _transformed(declaration.transform, parameter)
            except FetchError as error:
                raise FetchError(f"{relative!r}: {error}", code=error.code) from None
        return FrozenDict(values)
    return _transformed(declaration.transform, record)


def _transformed(transform: Transform, record: Record) -> Any:
    try:
        return _applied(transform, raw_value(record))
    except InvalidJSON as exc:  # its message says what kind of failure, never the value
        failure = str(exc)
    except Exception as exc:  # noqa: BLE001 - bad base64, or whatever a user's callable raises
        failure = type(exc).__name__
    raise FetchError(_transform_failure(transform, failure), code="TransformFailed") from None


def _applied(transform: Transform, raw: str | bytes) -> Any:
    """``raw`` transformed; raises whatever the transform raises."""
    if transform is None:
        return raw
    if isinstance(transform, str):
        return _NAMED_TRANSFORMS[transform](raw)
    return freeze(transform(raw))


def _from_json(raw: str | bytes) -> Any:
    """The ``"json"`` transform: the value's JSON, read-only."""
    # A hostile value (deeply nested, a huge integer) fails as bad JSON does.
    return freeze(loads(raw))


def _as_binary(raw: str | bytes) -> bytes:
    """The ``"binary"`` transform: a SecretBinary's bytes, or a string's base64 decoded."""
    if isinstance(raw, bytes):
        return raw  # a SecretBinary is already bytes
    return base64.b64decode(raw, validate=True)


def _as_list(raw: str | bytes) -> FrozenList:
    """The ``"list"`` transform: a ``StringList``'s comma-separated items."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    return FrozenList(text.split(","))


_NAMED_TRANSFORMS: dict[str, Callable[[str | bytes], Any]] = {
    "json": _from_json,
    "binary": _as_binary,
    "list": _as_list,
}


def _transform_failure(transform: Transform, failure: str) -> str:
    """The message for a value that ``transform`` failed on: its kind, never the value."""
    if transform is None:  # a source let through a record without a value
        return f"the record holds no usable value ({failure})"
    name = repr(transform) if isinstance(transform, str) else _callable_name(transform)
    return f"the value could not be transformed with {name} ({failure})"


def _callable_name(transform: Callable[[Any], Any]) -> str:
    name = getattr(transform, "__qualname__", None) or getattr(transform, "__name__", None)
    return f"{name}()" if isinstance(name, str) else "a callable"
