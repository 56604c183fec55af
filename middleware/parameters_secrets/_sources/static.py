"""Values from memory or a JSON file: tests, offline development, the demo."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._declarations import ParameterRequest, PathRequest, SecretRequest, ValueRequest
from ..exceptions import ConfigurationError, FetchError
from . import Outcome
from ._records import is_parameter_arn

_CREATED = "2026-01-01T00:00:00.000Z"
REFERENCE_PREFIX = "/aws/reference/secretsmanager/"
_PARAMETER_TYPES = ("String", "StringList", "SecureString")


class StaticSource:
    """Parameters and secrets held in memory, answered in the AWS APIs' own shapes.

    A parameter is found as ``GetParameter`` finds it: by name or ARN, with a version or
    label selector in the name (``/app/key:3``, ``/app/key:release``) or in the request.
    ``/aws/reference/secretsmanager/ID`` (``ID`` a secret's name or ARN, optionally
    ``:VERSION_ID`` or ``:STAGE``) answers with the secret, in AWS's shape for it: a
    ``SecureString`` whose ``Value`` is the secret's string (a ``SecretBinary``'s base64),
    with the ``GetSecretValue`` answer as JSON text in ``SourceResult``. Without
    decryption a reference is refused, as AWS refuses it (``ValidationException``).

    Args:
        parameters: Name to value. A value is a string; a list of strings (a
            ``StringList``); or a mapping with ``value`` (or ``json``: any JSON, stored as
            its text), and optionally ``type`` (``String``, ``StringList``,
            ``SecureString``), ``version`` (default 1) and ``labels``. A name holds no
            ``:`` and is not under ``/aws/reference/secretsmanager/``.
        secrets: Name to value. A value is a string (``SecretString``), bytes
            (``SecretBinary``), or a mapping with ``string``, ``json`` or ``binary``
            (base64), and optionally ``version_id`` and ``stages`` (default
            ``["AWSCURRENT"]``).

    Raises:
        ConfigurationError: An entry is not of a shape above.
    """

    # Its records are built and validated here: the store need not check them.
    checks_records = True

    def __init__(
        self,
        parameters: Mapping[str, Any] | None = None,
        secrets: Mapping[str, Any] | None = None,
    ) -> None:
        self._parameters = {
            name: _parameter_record(name, spec) for name, spec in (parameters or {}).items()
        }
        # Labels select a version but are not part of GetParameter's answer.
        self._labels = {name: record.pop("Labels") for name, record in self._parameters.items()}
        self._secrets = {name: _secret_record(name, spec) for name, spec in (secrets or {}).items()}
        self._file: str | None = None  # the values file, when read from one

    def __repr__(self) -> str:  # names only, never values
        if self._file is not None:
            return f"StaticSource.from_file({self._file!r})"
        return (
            f"StaticSource(parameters={sorted(self._parameters)}, secrets={sorted(self._secrets)})"
        )

    @classmethod
    def from_file(cls, path: str | Path) -> StaticSource:
        """Read ``{"parameters": {...}, "secrets": {...}}`` from a JSON file."""
        data = _values_file(path)
        try:
            source = cls(parameters=data.get("parameters"), secrets=data.get("secrets"))
        except ConfigurationError as error:
            raise ConfigurationError(f"values file {str(path)!r}: {error}") from None
        source._file = str(path)
        return source

    async def fetch(
        self,
        requests: Sequence[ValueRequest],
        deadline: float | None = None,  # noqa: ARG002
    ) -> list[Outcome]:
        """Answer each request from memory."""
        return [self._get(request) for request in requests]

    async def aclose(self) -> None:
        """Nothing to release."""

    def _get(self, request: ValueRequest) -> Outcome:
        if isinstance(request, ParameterRequest):
            return self._get_parameter(request)
        if isinstance(request, PathRequest):
            return self._get_path(request)
        return self._get_secret(request)

    def _get_path(self, request: PathRequest) -> Outcome:
        """What every page of ``GetParametersByPath`` holds together: the parameters under
        the path (its direct children only, if not recursive), each as ``GetParameter``
        answers it. None is an empty list, not an error."""
        parameters = []
        for name in sorted(self._parameters):
            if request.relative_name(name) is not None:
                parameter = self._get_parameter(ParameterRequest(name, decrypt=request.decrypt))
                parameters.append(parameter)
        return {"Path": request.path, "Parameters": parameters}

    def _get_parameter(self, request: ParameterRequest) -> Outcome:
        # Answer what GetParameter would for the Name it is sent.
        name = _sent_name(request)
        if name.startswith(REFERENCE_PREFIX):
            return self._get_reference(name, decrypt=request.decrypt)
        split = self._split_parameter_name(name)
        if isinstance(split, FetchError):
            return split
        path, selector = split
        record = self._parameters.get(path)
        if record is None:
            return FetchError(f"parameter {path} not found", code="ParameterNotFound")
        if selector is None:
            return _answered(record, None, decrypt=request.decrypt)
        missing = self._selector_missing(path, selector, record)
        if missing is not None:
            return missing
        return _answered(record, selector, decrypt=request.decrypt)

    def _selector_missing(
        self, path: str, selector: str, record: dict[str, Any]
    ) -> FetchError | None:
        """Why ``path``'s ``selector`` (a version or a label) selects nothing, if it does not."""
        if selector.isascii() and selector.isdigit():
            # Labels never start with a digit: digits are a version.
            return _version_missing(path, selector, record)
        if selector not in self._labels[path]:
            return FetchError(
                f"label {selector} of parameter {path} not found",
                code="ParameterVersionLabelNotFound",
            )
        return None

    def _split_parameter_name(self, name: str) -> tuple[str, str | None] | FetchError:
        """The stored name and the selector (``"3"``, ``"label"``) in a requested name."""
        from_arn = is_parameter_arn(name)
        if from_arn:
            name = name.split(":parameter/", 1)[1]
        # Parameter names have no ":" (AWS allows a-z, 0-9, "_.-" and "/"): one starts
        # the selector.
        path, selector = _split_selector(name)
        if _bad_selector(selector):
            return _many_selectors(name)
        if from_arn and f"/{path}" in self._parameters:
            # arn:...:parameter/a/b is /a/b, and arn:...:parameter/plain is plain.
            path = f"/{path}"
        return path, selector

    def _get_reference(self, name: str, *, decrypt: bool) -> Outcome:
        """A ``/aws/reference/secretsmanager/ID[:selector]`` parameter, as AWS answers it."""
        if not decrypt:
            return FetchError(  # AWS's own words
                "WithDecryption flag must be True for retrieving a Secret Manager secret.",
                code="ValidationException",
            )
        secret_id, selector = _split_reference(name.removeprefix(REFERENCE_PREFIX))
        if _bad_selector(selector):
            return _many_selectors(name)
        record = self._find_secret(secret_id)
        if record is None or not _selects(record, selector):
            what = f"secret {secret_id}" + (f" ({selector})" if selector else "")
            return FetchError(
                f"{what} not found when referencing Secrets Manager", code="ParameterNotFound"
            )
        return _reference_answer(record, secret_id, selector)

    def _get_secret(self, request: SecretRequest) -> Outcome:
        record = self._find_secret(request.secret_id)
        if record is None:
            return FetchError(
                "Secrets Manager can't find the specified secret.",
                code="ResourceNotFoundException",
            )
        refusal = _version_refusal(request, record)
        if refusal is not None:
            return refusal
        return copy.deepcopy(record)  # the caller may change it; the source must not change

    def _find_secret(self, secret_id: str) -> dict[str, Any] | None:
        """The secret ``secret_id`` names: by its name, else by its ARN."""
        by_arn = (record for record in self._secrets.values() if record["ARN"] == secret_id)
        return self._secrets.get(secret_id) or next(by_arn, None)


def _values_file(path: str | Path) -> dict[str, Any]:
    """A values file's JSON: an object with a ``parameters`` and/or a ``secrets`` object."""
    data = _read_json(path)
    if not isinstance(data, dict) or not set(data) <= {"parameters", "secrets"}:
        raise ConfigurationError(
            f"values file {str(path)!r} must hold an object with 'parameters' and/or 'secrets'"
        )
    for section in ("parameters", "secrets"):
        if not isinstance(data.get(section, {}), dict):
            raise ConfigurationError(f"values file {str(path)!r}: {section!r} must be an object")
    return data


def _read_json(path: str | Path) -> Any:
    """The JSON document in the values file ``path``, or why it cannot be read."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read values file {str(path)!r}: {exc.strerror}") from None
    except ValueError as exc:
        # JSONDecodeError's message gives a position, never the document.
        raise ConfigurationError(f"values file {str(path)!r} is not JSON: {exc}") from None


def _version_missing(path: str, version: str, record: dict[str, Any]) -> FetchError | None:
    """Why ``path``'s ``version`` (digits) is not the one stored, if it is not."""
    if len(version) > 19 or int(version) != record["Version"]:
        return FetchError(
            f"version {version} of parameter {path} not found", code="ParameterVersionNotFound"
        )
    return None


def _sent_name(request: ParameterRequest) -> str:
    """The ``Name`` GetParameter is sent: the declared selector joins the name as ``:3``
    or ``:label``, as AwsSource sends it (a selector may already be in the name)."""
    if request.version is not None:
        return f"{request.name}:{request.version}"
    if request.label is not None:
        return f"{request.name}:{request.label}"
    return request.name


def _bad_selector(selector: str | None) -> bool:
    """Whether the selector after a name's first ``:`` is empty or holds another ``:``."""
    return selector is not None and (not selector or ":" in selector)


def _many_selectors(name: str) -> FetchError:
    return FetchError(
        f"parameter name {name!r} must have at most one non-empty selector",
        code="ValidationException",
    )


def _version_refusal(request: SecretRequest, record: Mapping[str, Any]) -> FetchError | None:
    """Why the secret ``record`` has not the version or stage ``request`` asks for (no
    version nor stage: ``AWSCURRENT``), if it has not."""
    if request.version_id is not None and request.version_id != record["VersionId"]:
        return FetchError(
            "Secrets Manager can't find the specified secret value for VersionId: "
            f"{request.version_id}",
            code="ResourceNotFoundException",
        )
    stage = _asked_stage(request)
    if stage is not None and stage not in record["VersionStages"]:
        return FetchError(
            f"Secrets Manager can't find the specified secret value for staging label: {stage}",
            code="ResourceNotFoundException",
        )
    return None


def _asked_stage(request: SecretRequest) -> str | None:
    """The staging label ``request`` asks for: its own, else ``AWSCURRENT`` if it pins no
    version id either."""
    if request.version_stage is None and request.version_id is None:
        return "AWSCURRENT"
    return request.version_stage


def _reference_answer(
    record: Mapping[str, Any], secret_id: str, selector: str | None
) -> dict[str, Any]:
    """``GetParameter``'s answer for a reference to the secret ``record``."""
    value = record.get("SecretString", record.get("SecretBinary"))
    return {
        "ARN": record["ARN"],
        "DataType": "text",
        "LastModifiedDate": record["CreatedDate"],
        "Name": REFERENCE_PREFIX + secret_id,
        "Selector": None if selector is None else f":{selector}",
        "SourceResult": json.dumps(record),  # the GetSecretValue answer, as text
        "Type": "SecureString",
        "Value": value,
        "Version": 0,
    }


def _secret_field(where: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """The ``SecretString`` or ``SecretBinary`` of a secret's spec."""
    if "json" in spec:
        return {"SecretString": json.dumps(spec["json"])}
    if isinstance(spec.get("string"), str):
        return {"SecretString": spec["string"]}
    if isinstance(spec.get("binary"), str):
        try:
            base64.b64decode(spec["binary"], validate=True)
        except ValueError:
            raise ConfigurationError(f"{where}: 'binary' must be base64") from None
        return {"SecretBinary": spec["binary"]}
    raise ConfigurationError(f"{where}: 'string' and 'binary' must be strings")


def _secret_version(
    where: str, spec: Mapping[str, Any], version_id: str, stages: list[str]
) -> tuple[str, list[str]]:
    """The version id and staging labels of a secret's spec (else the defaults given)."""
    version_id = spec.get("version_id", version_id)
    stages = spec.get("stages", stages)
    if not isinstance(version_id, str) or not _is_string_list(stages):
        raise ConfigurationError(
            f"{where}: 'version_id' must be a string and 'stages' a list of strings"
        )
    return version_id, list(stages)  # our own copy of the stages


def _answered(record: dict[str, Any], selector: str | None, *, decrypt: bool) -> dict[str, Any]:
    """A copy of ``record`` as ``GetParameter`` answers it for ``selector``."""
    record = copy.deepcopy(record)
    if selector is not None:
        record["Selector"] = f":{selector}"
    if record["Type"] == "SecureString" and not decrypt:
        # Stands in for ciphertext; derived from the name, so it says nothing of the value.
        digest = hashlib.sha256(record["Name"].encode()).digest()[:24]
        record["Value"] = base64.b64encode(b"static-ciphertext:" + digest).decode()
    return record


def _selects(record: dict[str, Any], selector: str | None) -> bool:
    """Whether a secret's ``selector`` (a version id or a staging label, as
    ``GetSecretValue`` takes; none: ``AWSCURRENT``) is this version of it."""
    if selector is None:
        return "AWSCURRENT" in record["VersionStages"]
    return selector == record["VersionId"] or selector in record["VersionStages"]


def _split_reference(secret_id: str) -> tuple[str, str | None]:
    """The secret id and the selector (``None`` if no ``:``) after the reference prefix."""
    if secret_id.startswith("arn:"):
        # arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME has six colons of its own.
        parts = secret_id.split(":")
        return ":".join(parts[:7]), ":".join(parts[7:]) if len(parts) > 7 else None
    return _split_selector(secret_id)


def _split_selector(name: str) -> tuple[str, str | None]:
    """A name and the selector after its first ``:`` (``None`` if it has no ``:``)."""
    found, colon, selector = name.partition(":")
    return found, selector if colon else None


def _parameter_record(name: str, spec: Any) -> dict[str, Any]:
    where = f"parameter {name!r}"
    _check_parameter_name(where, name)
    value, kind, version, labels = _parameter_spec(where, spec)
    return {
        "ARN": f"arn:aws:ssm:local:000000000000:parameter/{name.lstrip('/')}",
        "DataType": "text",
        "LastModifiedDate": _CREATED,
        "Name": name,
        "Selector": None,
        "SourceResult": None,
        "Type": kind,
        "Value": value,
        "Version": version,
        "Labels": labels,
    }


def _check_parameter_name(where: str, name: str) -> None:
    if ":" in name:
        raise ConfigurationError(
            f"{where}: a parameter name cannot hold ':', which starts a version or label"
        )
    if name.startswith(REFERENCE_PREFIX):
        raise ConfigurationError(
            f"{where}: {REFERENCE_PREFIX}... names a secret: put it under 'secrets'"
        )


def _parameter_spec(where: str, spec: Any) -> tuple[str, str, int, list[str]]:
    """``(value, type, version, labels)`` of a parameter's spec."""
    if isinstance(spec, str):
        return spec, "String", 1, []
    if _is_string_list(spec):
        return ",".join(spec), "StringList", 1, []
    if isinstance(spec, Mapping) and ("value" in spec) != ("json" in spec):
        return _parameter_object(where, spec)
    raise ConfigurationError(
        f"{where} must be a string, a list of strings, or an object with 'value' or 'json'"
    )


def _parameter_object(where: str, spec: Mapping[str, Any]) -> tuple[str, str, int, list[str]]:
    _check_fields(where, spec, {"value", "json", "type", "version", "labels"})
    value = json.dumps(spec["json"]) if "json" in spec else spec["value"]
    kind = "String"
    if isinstance(value, list):
        value, kind = ",".join(map(str, value)), "StringList"
    if not isinstance(value, str):
        raise ConfigurationError(f"{where}: 'value' must be a string or a list of strings")
    kind, version, labels = spec.get("type", kind), spec.get("version", 1), spec.get("labels", [])
    _check_parameter_fields(where, kind, version, labels)
    return value, kind, version, list(labels)  # our own copy of the labels


def _check_parameter_fields(where: str, kind: Any, version: Any, labels: Any) -> None:
    if kind not in _PARAMETER_TYPES:
        raise ConfigurationError(f"{where}: 'type' must be one of {', '.join(_PARAMETER_TYPES)}")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ConfigurationError(f"{where}: 'version' must be a positive integer")
    if not _is_string_list(labels):
        raise ConfigurationError(f"{where}: 'labels' must be a list of strings")


def _is_string_list(value: Any) -> bool:
    """Whether ``value`` is a list of strings (empty or not)."""
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _check_fields(where: str, spec: Mapping[str, Any], known: set[str]) -> None:
    unknown = set(spec) - known
    if unknown:
        raise ConfigurationError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")


def _secret_record(secret_id: str, spec: Any) -> dict[str, Any]:
    where = f"secret {secret_id!r}"
    version_id = "00000000-0000-4000-8000-" + hashlib.sha256(secret_id.encode()).hexdigest()[:12]
    stages = ["AWSCURRENT"]
    if isinstance(spec, str):
        field: dict[str, Any] = {"SecretString": spec}
    elif isinstance(spec, (bytes, bytearray)):
        field = {"SecretBinary": base64.b64encode(spec).decode()}
    elif isinstance(spec, Mapping) and len({"string", "json", "binary"} & set(spec)) == 1:
        _check_fields(where, spec, {"string", "json", "binary", "version_id", "stages"})
        field = _secret_field(where, spec)
        version_id, stages = _secret_version(where, spec, version_id, stages)
    else:
        raise ConfigurationError(
            f"{where} must be a string, bytes, or an object with one of 'string', 'json', 'binary'"
        )
    return {
        "ARN": f"arn:aws:secretsmanager:local:000000000000:secret:{secret_id}-AbCdEf",
        "Name": secret_id,
        "VersionId": version_id,
        **field,
        "VersionStages": stages,
        "CreatedDate": _CREATED,
    }
