"""Values from memory or a JSON file: tests, offline development, the demo."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._declarations import ParameterRequest, SecretRequest, ValueRequest
from ..exceptions import ConfigurationError, FetchError
from . import Outcome

_CREATED = "2026-01-01T00:00:00.000Z"
_PARAMETER_TYPES = ("String", "StringList", "SecureString")


class StaticSource:
    """Parameters and secrets held in memory, answered in the AWS APIs' own shapes.

    Args:
        parameters: Name to value. A value is a string; a list of strings (a
            ``StringList``); or a mapping with ``value`` (or ``json``: any JSON, stored as
            its text), and optionally ``type`` (``String``, ``StringList``,
            ``SecureString``), ``version`` (default 1) and ``labels``.
        secrets: Name to value. A value is a string (``SecretString``), bytes
            (``SecretBinary``), or a mapping with ``string``, ``json`` or ``binary``
            (base64), and optionally ``version_id`` and ``stages`` (default
            ``["AWSCURRENT"]``).

    Raises:
        ConfigurationError: An entry is not of a shape above.
    """

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

    def __repr__(self) -> str:  # names only, never values
        return (
            f"StaticSource(parameters={sorted(self._parameters)}, secrets={sorted(self._secrets)})"
        )

    @classmethod
    def from_file(cls, path: str | Path) -> StaticSource:
        """Read ``{"parameters": {...}, "secrets": {...}}`` from a JSON file."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read values file {str(path)!r}: {exc.strerror}"
            ) from None
        except ValueError as exc:
            # JSONDecodeError's message gives a position, never the document.
            raise ConfigurationError(f"values file {str(path)!r} is not JSON: {exc}") from None
        if not isinstance(data, dict) or not set(data) <= {"parameters", "secrets"}:
            raise ConfigurationError(
                f"values file {str(path)!r} must hold an object with 'parameters' and/or 'secrets'"
            )
        for section in ("parameters", "secrets"):
            if not isinstance(data.get(section, {}), dict):
                raise ConfigurationError(
                    f"values file {str(path)!r}: {section!r} must be an object"
                )
        try:
            return cls(parameters=data.get("parameters"), secrets=data.get("secrets"))
        except ConfigurationError as error:
            raise ConfigurationError(f"values file {str(path)!r}: {error}") from None

    async def fetch(
        self, requests: Sequence[ValueRequest], deadline: float | None = None
    ) -> list[Outcome]:
        """Answer each request from memory."""
        return [self._get(request) for request in requests]

    async def aclose(self) -> None:
        """Nothing to release."""

    def _get(self, request: ValueRequest) -> Outcome:
        if isinstance(request, ParameterRequest):
            return self._get_parameter(request)
        return self._get_secret(request)

    def _get_parameter(self, request: ParameterRequest) -> Outcome:
        name = self._parameter_name(request.name)
        record = self._parameters.get(name)
        if record is None:
            return FetchError(f"parameter {request.name} not found", code="ParameterNotFound")
        if request.version is not None and request.version != record["Version"]:
            return FetchError(
                f"version {request.version} of parameter {request.name} not found",
                code="ParameterVersionNotFound",
            )
        if request.label is not None and request.label not in self._labels[name]:
            return FetchError(
                f"label {request.label} of parameter {request.name} not found",
                code="ParameterVersionLabelNotFound",
            )
        record = copy.deepcopy(record)
        if request.version is not None:
            record["Selector"] = f":{request.version}"
        elif request.label is not None:
            record["Selector"] = f":{request.label}"
        if record["Type"] == "SecureString" and not request.decrypt:
            # Stands in for ciphertext; derived from the name, so it says nothing of the value.
            digest = hashlib.sha256(record["Name"].encode()).digest()[:24]
            record["Value"] = base64.b64encode(b"static-ciphertext:" + digest).decode()
        return record

    def _parameter_name(self, name: str) -> str:
        # An ARN names the same parameter as its name: arn:...:parameter/a/b is /a/b, and
        # arn:...:parameter/plain is plain.
        if name.startswith("arn:") and ":parameter/" in name:
            path = name.split(":parameter/", 1)[1]
            return f"/{path}" if f"/{path}" in self._parameters else path
        return name

    def _get_secret(self, request: SecretRequest) -> Outcome:
        record = self._secrets.get(request.secret_id) or self._secret_by_arn(request.secret_id)
        if record is None:
            return FetchError(
                "Secrets Manager can't find the specified secret.",
                code="ResourceNotFoundException",
            )
        if request.version_id is not None and request.version_id != record["VersionId"]:
            return FetchError(
                "Secrets Manager can't find the specified secret value for VersionId: "
                f"{request.version_id}",
                code="ResourceNotFoundException",
            )
        stage = request.version_stage
        if stage is None and request.version_id is None:
            stage = "AWSCURRENT"
        if stage is not None and stage not in record["VersionStages"]:
            return FetchError(
                f"Secrets Manager can't find the specified secret value for staging label: {stage}",
                code="ResourceNotFoundException",
            )
        return copy.deepcopy(record)  # the caller may change it; the source must not change

    def _secret_by_arn(self, secret_id: str) -> dict[str, Any] | None:
        for record in self._secrets.values():
            if record["ARN"] == secret_id:
                return record
        return None


def _parameter_record(name: str, spec: Any) -> dict[str, Any]:
    where = f"parameter {name!r}"
    labels: list[str] = []
    version = 1
    kind = "String"
    if isinstance(spec, str):
        value = spec
    elif isinstance(spec, list) and all(isinstance(item, str) for item in spec):
        value, kind = ",".join(spec), "StringList"
    elif isinstance(spec, Mapping) and ("value" in spec) != ("json" in spec):
        unknown = set(spec) - {"value", "json", "type", "version", "labels"}
        if unknown:
            raise ConfigurationError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        value = json.dumps(spec["json"]) if "json" in spec else spec["value"]
        if isinstance(value, list):
            value, kind = ",".join(map(str, value)), "StringList"
        if not isinstance(value, str):
            raise ConfigurationError(f"{where}: 'value' must be a string or a list of strings")
        kind = spec.get("type", kind)
        version = spec.get("version", 1)
        labels = spec.get("labels", [])
        if kind not in _PARAMETER_TYPES:
            raise ConfigurationError(
                f"{where}: 'type' must be one of {', '.join(_PARAMETER_TYPES)}"
            )
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ConfigurationError(f"{where}: 'version' must be a positive integer")
        if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
            raise ConfigurationError(f"{where}: 'labels' must be a list of strings")
        labels = list(labels)  # our own copy
    else:
        raise ConfigurationError(
            f"{where} must be a string, a list of strings, or an object with 'value' or 'json'"
        )
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


def _secret_record(secret_id: str, spec: Any) -> dict[str, Any]:
    where = f"secret {secret_id!r}"
    version_id = "00000000-0000-4000-8000-" + hashlib.sha256(secret_id.encode()).hexdigest()[:12]
    stages = ["AWSCURRENT"]
    field: dict[str, Any]
    if isinstance(spec, str):
        field = {"SecretString": spec}
    elif isinstance(spec, (bytes, bytearray)):
        field = {"SecretBinary": base64.b64encode(spec).decode()}
    elif isinstance(spec, Mapping) and len({"string", "json", "binary"} & set(spec)) == 1:
        unknown = set(spec) - {"string", "json", "binary", "version_id", "stages"}
        if unknown:
            raise ConfigurationError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        if "json" in spec:
            field = {"SecretString": json.dumps(spec["json"])}
        elif "string" in spec and isinstance(spec["string"], str):
            field = {"SecretString": spec["string"]}
        elif "binary" in spec and isinstance(spec["binary"], str):
            try:
                base64.b64decode(spec["binary"], validate=True)
            except ValueError:
                raise ConfigurationError(f"{where}: 'binary' must be base64") from None
            field = {"SecretBinary": spec["binary"]}
        else:
            raise ConfigurationError(f"{where}: 'string' and 'binary' must be strings")
        version_id = spec.get("version_id", version_id)
        stages = spec.get("stages", stages)
        if (
            not isinstance(version_id, str)
            or not isinstance(stages, list)
            or not all(isinstance(s, str) for s in stages)
        ):
            raise ConfigurationError(
                f"{where}: 'version_id' must be a string and 'stages' a list of strings"
            )
        stages = list(stages)  # our own copy
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
