"""Whether a 200 answer holds a usable value for what was asked: decided by the source.

An answer without a value, with a ``SecretBinary`` that is not base64, or about another
parameter or secret than the one asked for, is a transient ``MalformedResponse``: it is
never cached, the previous value keeps being served, and upstream is asked again later.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from .._declarations import ParameterRequest, PathRequest, SecretRequest, ValueRequest
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
    elif isinstance(request, PathRequest):
        problem = _path_problem(request, record)
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


def _path_problem(request: PathRequest, record: dict[str, Any]) -> str | None:
    parameters = record.get("Parameters")
    if not isinstance(parameters, list):
        return "has no Parameters"
    for parameter in parameters:
        problem = _path_parameter_problem(request, parameter)
        if problem is not None:
            return problem
    return None


def _path_parameter_problem(request: PathRequest, parameter: object) -> str | None:
    """What is wrong with one parameter of a path's record, if anything."""
    if not isinstance(parameter, dict) or not isinstance(parameter.get("Value"), str):
        return "has a parameter without a Value"
    name = parameter.get("Name")
    if not isinstance(name, str) or request.relative_name(name) is None:
        return "holds a parameter outside the path"
    return None


REFERENCE_PREFIX = "/aws/reference/secretsmanager/"


def _same_parameter(asked: str, name: str) -> bool:
    """Whether an answer's ``Name`` can be the parameter asked for.

    Every name AWS may answer with counts: the asked name with or without its ``:version``
    or ``:label`` selector; for an ARN (a shared parameter), the ARN itself or the plain
    name it holds; for ``/aws/reference/secretsmanager/ID``, the reference, or the
    secret's own name or ARN. Only a name clearly about another value is refused.
    """
    plain = _without_selector(asked)
    if name in (asked, plain):
        return True
    if plain.startswith(REFERENCE_PREFIX):
        secret = _split_reference(plain.removeprefix(REFERENCE_PREFIX))
        return _same_secret_name(secret, _split_reference(name.removeprefix(REFERENCE_PREFIX)))
    return _parameter_path(plain) == _parameter_path(_without_selector(name))


def _without_selector(name: str) -> str:
    """The parameter name without a ``:version`` / ``:label`` selector (a parameter name
    holds no ``:``, but an ARN and a reference to a secret's ARN do)."""
    if name.startswith(REFERENCE_PREFIX):
        return REFERENCE_PREFIX + _split_reference(name.removeprefix(REFERENCE_PREFIX))
    if is_parameter_arn(name):
        head, path = name.split(":parameter/", 1)
        return f"{head}:parameter/{path.split(':', 1)[0]}"
    return name.split(":", 1)[0]


def _split_reference(secret_id: str) -> str:
    """The secret id of a reference, without its selector."""
    if secret_id.startswith("arn:"):
        # arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME has six colons of its own.
        return ":".join(secret_id.split(":")[:7])
    return secret_id.split(":", 1)[0]


def _parameter_path(name: str) -> str:
    """The parameter's path without a leading slash, whether ``name`` is one or an ARN:
    ``arn:...:parameter/a/b`` names ``/a/b``, and ``arn:...:parameter/plain`` names
    ``plain``."""
    if is_parameter_arn(name):
        name = name.split(":parameter/", 1)[1]
    return name.lstrip("/")


def is_parameter_arn(name: str) -> bool:
    """Whether ``name`` is a parameter's ARN (``arn:...:parameter/NAME``)."""
    return name.startswith("arn:") and ":parameter/" in name


def _secret_problem(request: SecretRequest, record: dict[str, Any]) -> str | None:
    problem = _secret_value_problem(record)
    if problem is not None:
        return problem
    name, arn = record.get("Name"), record.get("ARN")
    if isinstance(name, str) and not _same_secret(request.secret_id, name, arn):
        return "is about another secret"
    return None


def _secret_value_problem(record: dict[str, Any]) -> str | None:
    """What is wrong with a secret's record's value, if anything."""
    string, binary = record.get("SecretString"), record.get("SecretBinary")
    if isinstance(binary, str):
        try:
            base64.b64decode(binary, validate=True)
        except (binascii.Error, ValueError):
            return "has a SecretBinary that is not base64"
    elif not isinstance(string, str) and not isinstance(binary, (bytes, bytearray)):
        return "has no SecretString or SecretBinary"
    return None


def _same_secret(asked: str, name: str, arn: object) -> bool:
    if asked in (name, arn):
        return True
    return _same_secret_name(asked, name) or (
        isinstance(arn, str) and _same_secret_name(asked, arn)
    )


def _same_secret_name(one: str, other: str) -> bool:
    """Whether two secret ids (names, full or partial ARNs) can name the same secret."""
    return bool(_secret_names(one) & _secret_names(other))


def _secret_names(secret_id: str) -> set[str]:
    """The names ``secret_id`` may stand for: itself, or for an ARN the name in it, with
    and without the ``-`` and six random characters that end a full ARN (a partial ARN
    leaves them out, and a name may itself end that way)."""
    if not (secret_id.startswith("arn:") and ":secret:" in secret_id):
        return {secret_id}
    name = secret_id.split(":secret:", 1)[1]
    names = {name}
    if len(name) > 7 and name[-7] == "-":
        names.add(name[:-7])
    return names
