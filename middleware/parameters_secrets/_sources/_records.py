"""Whether a 200 answer holds a usable value for what was asked: decided by the source.

An answer without a value, with a ``SecretBinary`` that is not base64, or about another
parameter or secret than the one asked for, is a transient ``MalformedResponse``: it is
never cached, the previous value keeps being served, and upstream is asked again later.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from .._declarations import ParameterRequest, SecretRequest, ValueRequest
from ..exceptions import FetchError


def checked_record(request: ValueRequest, record: Any, *, origin: str = "answer") -> Any:
    """``record`` if it holds a usable value for ``request``, else ``MalformedResponse``.

    Args:
        request: What was asked.
        record: The ``Parameter`` object of a ``GetParameter`` answer, or a
            ``GetSecretValue`` answer.
        origin: Who answered, for the error message ("the extension's answer").
    """
    problem: str | None
    if not isinstance(record, dict):
        problem = "is not a JSON object"
    elif isinstance(request, ParameterRequest):
        problem = _parameter_problem(request, record)
    else:
        problem = _secret_problem(request, record)
    if problem is None:
        return record
    return FetchError(
        f"{request.describe()}: the {origin} {problem}", code="MalformedResponse", transient=True
    )


def _parameter_problem(request: ParameterRequest, record: dict[str, Any]) -> str | None:
    if not isinstance(record.get("Value"), str):
        return "has no Value"
    name = record.get("Name")
    if isinstance(name, str) and not _same_parameter(request.name, name):
        return "is about another parameter"
    return None


def _same_parameter(asked: str, name: str) -> bool:
    # GetParameter takes a name or an ARN, either with a ":version" or ":label" selector
    # (a parameter name never contains ":"), and answers with the plain name.
    if asked.startswith("arn:") and ":parameter/" in asked:
        path = asked.split(":parameter/", 1)[1].split(":", 1)[0]
        # arn:...:parameter/a/b names /a/b; arn:...:parameter/plain names plain.
        return name.lstrip("/") == path
    return name == asked.split(":", 1)[0]


def _secret_problem(request: SecretRequest, record: dict[str, Any]) -> str | None:
    string, binary = record.get("SecretString"), record.get("SecretBinary")
    if isinstance(binary, str):
        try:
            base64.b64decode(binary, validate=True)
        except (binascii.Error, ValueError):
            return "has a SecretBinary that is not base64"
    elif not isinstance(string, str) and not isinstance(binary, (bytes, bytearray)):
        return "has no SecretString or SecretBinary"
    name, arn = record.get("Name"), record.get("ARN")
    if isinstance(name, str) and not _same_secret(request.secret_id, name, arn):
        return "is about another secret"
    return None


def _same_secret(asked: str, name: str, arn: object) -> bool:
    if asked in (name, arn):
        return True
    # A partial ARN leaves out the "-" and six random characters that end the full one.
    return isinstance(arn, str) and asked.startswith("arn:") and arn[:-7] == asked
