"""``parameters-secrets policy``: the least-privilege IAM policy for what an app declares.

Pure functions from declarations to a policy document (a dict), and the lookup of the
declarations an object holds (a store, a middleware, a mapping, a model class). Imported
only by the command: nothing here runs in an app.

What each declaration needs, as AWS documents it:

- a parameter: ``ssm:GetParameter`` (the extension, single reads) and
  ``ssm:GetParameters`` (``AwsSource`` batches) on the parameter's ARN, whatever its
  version or label selector;
- a path: ``ssm:GetParametersByPath``, authorised against the path itself, not the
  parameters it returns;
- ``/aws/reference/secretsmanager/ID``: the parameter's ARN and the secret's
  (Parameter Store passes the call through to Secrets Manager, with the caller's rights);
- ``/aws/service/...``: a public parameter, whose ARN has no account;
- a secret: ``secretsmanager:GetSecretValue`` on its ARN (a name gets ``-??????``, the
  six random characters Secrets Manager appends, matched exactly rather than with ``*``),
  and ``secretsmanager:BatchGetSecretValue``, which has no resource-level permissions;
- ``kms:Decrypt`` wherever decryption is asked, on ``*`` limited by ``kms:ViaService``:
  the key is not in the declaration (``aws/ssm``, ``aws/secretsmanager`` or a
  customer-managed key), and the condition lets the role decrypt only through SSM and
  Secrets Manager, so only values the other statements already let it read;
- ``sts:AssumeRole`` on each ``role_arn``; ``secretsmanager:DescribeSecret`` where
  ``follow_rotation``. A value read through a role needs no permission of the function's
  own: its reads belong in that role's policy (``role=`` prints it).
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ._declarations import Declaration, Parameter, ParametersByPath, Secret

VERSION = "2012-10-17"
ANY = "*"
REFERENCE_PREFIX = "/aws/reference/secretsmanager/"
PUBLIC_PREFIX = "/aws/service/"

# Partitions whose regions a name tells apart, and their DNS suffix (botocore's
# partitions.json), for kms:ViaService's "ssm.REGION.SUFFIX".
_PARTITIONS = (
    (r"cn-[a-z]+-\d+", "aws-cn"),
    (r"us-gov-[a-z]+-\d+", "aws-us-gov"),
    (r"us-iso-[a-z]+-\d+", "aws-iso"),
    (r"us-isob-[a-z]+-\d+", "aws-iso-b"),
    (r"eu-isoe-[a-z]+-\d+", "aws-iso-e"),
    (r"us-isof-[a-z]+-\d+", "aws-iso-f"),
    (r"eusc-de-[a-z]+-\d+", "aws-eusc"),
)
_DNS_SUFFIXES = {
    "aws-cn": "amazonaws.com.cn",
    "aws-iso": "c2s.ic.gov",
    "aws-iso-b": "sc2s.sgov.gov",
    "aws-iso-e": "cloud.adc-e.uk",
    "aws-iso-f": "csp.hci.ic.gov",
    "aws-eusc": "amazonaws.eu",
}
_DEFAULT_DNS_SUFFIX = "amazonaws.com"  # aws and aws-us-gov
_REGION = re.compile(r"[a-z]{2,}(-[a-z]+)+-\d+")
_ACCOUNT = re.compile(r"\d{12}")
_PARTITION = re.compile(r"aws(-[a-z]+)*")
_ROLE = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/\S+")

Policy = dict[str, Any]
Statement = dict[str, Any]


class PolicyError(ValueError):
    """A bad argument or target of the command: its message is the whole error line."""


@dataclass(frozen=True)
class Scope:
    """Where the values live: ``*`` for what was not given."""

    region: str = ANY
    account: str = ANY
    partition: str = "aws"

    @property
    def dns_suffix(self) -> str:
        """The services' DNS suffix in this partition (``amazonaws.com``...)."""
        return _DNS_SUFFIXES.get(self.partition, _DEFAULT_DNS_SUFFIX)


def scope(
    region: str | None = None, account: str | None = None, partition: str | None = None
) -> Scope:
    """A validated :class:`Scope`; the partition follows the region unless given.

    Raises:
        PolicyError: A region, account or partition that could not be AWS's.
    """
    _check("--region", region, _REGION, "an AWS region such as us-east-1")
    _check("--account", account, _ACCOUNT, "a 12-digit AWS account id")
    _check("--partition", partition, _PARTITION, "an AWS partition such as aws or aws-cn")
    return Scope(region or ANY, account or ANY, partition or _partition_of(region))


def _check(option: str, given: str | None, pattern: re.Pattern[str], what: str) -> None:
    """Refuses an ``option`` given that does not match ``pattern`` (``what`` it must be)."""
    if given is not None and not pattern.fullmatch(given):
        raise PolicyError(f"{option} must be {what}, not {given!r}")


def _partition_of(region: str | None) -> str:
    for pattern, partition in _PARTITIONS:
        if region is not None and re.fullmatch(pattern, region):
            return partition
    return "aws"


# -- ARNs ------------------------------------------------------------------------------


def parameter_arn(name: str, where: Scope) -> str:
    """A parameter's ARN: an ARN as is; a public parameter's has no account; a name loses
    its leading slash (``/app/key`` is ``parameter/app/key``)."""
    if name.startswith("arn:"):
        return name
    account = "" if name.startswith(PUBLIC_PREFIX) else where.account
    return f"arn:{where.partition}:ssm:{where.region}:{account}:parameter/{name.removeprefix('/')}"


def secret_arn(secret_id: str, where: Scope) -> str:
    """A secret's ARN: an ARN as is; a name followed by ``-??????``, exactly the six
    random characters Secrets Manager appends (``*`` would also match other secrets whose
    names start with this one's)."""
    if secret_id.startswith("arn:"):
        return secret_id
    prefix = f"arn:{where.partition}:secretsmanager:{where.region}:{where.account}"
    return f"{prefix}:secret:{secret_id}-??????"


def path_arn(path: str, where: Scope) -> str:
    """What ``GetParametersByPath`` is authorised against: the path itself (the root
    ``/``, which has no ARN of its own, as every parameter)."""
    stripped = path.strip("/")
    return parameter_arn("/" + stripped if stripped else "/*", where)


# -- the policy -----------------------------------------------------------------------


@dataclass
class _Needs:
    """What the declarations need, collected before the statements are written."""

    parameters: set[str]
    paths: set[str]
    secrets: set[str]
    rotating_secrets: set[str]
    decrypt_via: set[str]
    roles: set[str]

    @classmethod
    def empty(cls) -> _Needs:
        return cls(set(), set(), set(), set(), set(), set())


def policy(
    declarations: Iterable[object], where: Scope | None = None, *, role: str | None = None
) -> Policy:
    """The IAM policy document the declarations need.

    Args:
        declarations: ``Parameter``, ``Secret`` and ``ParametersByPath`` objects (or any
            object with their attributes).
        where: The region, account and partition of the values' ARNs (default: ``*``,
            ``*``, ``aws``).
        role: ``None``: the policy of the function's own role (values read through a
            ``role_arn`` only need ``sts:AssumeRole``). A role ARN: the policy that role
            needs for the values declared with it.

    Raises:
        PolicyError: Nothing to allow (no declaration, or none for ``role``), or a
            ``role`` that is not an IAM role's ARN.
    """
    _check_role(role)
    where = where or Scope()
    statements = _statements(_needs(declarations, where, role), where)
    if not statements:
        whose = f"with role_arn {role}" if role is not None else "without a role"
        raise PolicyError(f"no value is declared {whose}: there is nothing to allow")
    return {"Version": VERSION, "Statement": statements}


def _check_role(role: str | None) -> None:
    """Refuse a ``role`` that is not an IAM role's ARN."""
    if role is not None and not _ROLE.fullmatch(role):
        raise PolicyError(f"--role must be an IAM role ARN, not {role!r}")


def _needs(declarations: Iterable[object], where: Scope, role: str | None) -> _Needs:
    """What reading the declarations needs, under ``role`` (``None``: the function's)."""
    needs = _Needs.empty()
    for declaration in declarations:
        _add(needs, declaration, where, role)
    return needs


def _add(needs: _Needs, declaration: object, where: Scope, role: str | None) -> None:
    declared_role = getattr(declaration, "role_arn", None)
    if role is None and declared_role is not None:
        needs.roles.add(declared_role)
    elif declared_role == role:
        _add_declared(needs, declaration, where)


def _add_declared(needs: _Needs, declaration: object, where: Scope) -> None:
    """What reading ``declaration`` (under the role these needs are for) needs."""
    if isinstance(declaration, Parameter):
        _add_parameter(needs, declaration, where)
    elif isinstance(declaration, ParametersByPath):
        _add_path(needs, declaration, where)
    elif isinstance(declaration, Secret):
        _add_declared_secret(needs, declaration, where)


def _add_path(needs: _Needs, declaration: ParametersByPath, where: Scope) -> None:
    needs.paths.add(path_arn(declaration.path, where))
    if declaration.decrypt:
        needs.decrypt_via.add("ssm")


def _add_declared_secret(needs: _Needs, declaration: Secret, where: Scope) -> None:
    _add_secret(needs, declaration.secret_id, where)
    if getattr(declaration, "follow_rotation", False):
        needs.rotating_secrets.add(secret_arn(declaration.secret_id, where))


def _add_parameter(needs: _Needs, declaration: Parameter, where: Scope) -> None:
    name = declaration.name
    needs.parameters.add(parameter_arn(name, where))
    if name.startswith(REFERENCE_PREFIX):
        # Always decrypted, by Secrets Manager: Parameter Store only passes the call on.
        _add_secret(needs, name.removeprefix(REFERENCE_PREFIX), where)
    elif declaration.decrypt and not name.startswith(PUBLIC_PREFIX):
        # Public parameters are plain Strings: nothing to decrypt.
        needs.decrypt_via.add("ssm")


def _add_secret(needs: _Needs, secret_id: str, where: Scope) -> None:
    needs.secrets.add(secret_arn(secret_id, where))
    needs.decrypt_via.add("secretsmanager")


def _statements(needs: _Needs, where: Scope) -> list[Statement]:
    statements = [
        _allow(
            "ReadDeclaredParameters", ["ssm:GetParameter", "ssm:GetParameters"], needs.parameters
        ),
        _allow("ReadDeclaredPaths", ["ssm:GetParametersByPath"], needs.paths),
        _allow("ReadDeclaredSecrets", ["secretsmanager:GetSecretValue"], needs.secrets),
        # Authorised per call; each secret in it still needs GetSecretValue (above).
        _allow("BatchReadSecrets", ["secretsmanager:BatchGetSecretValue"], _any(needs.secrets)),
        _allow("FollowRotation", ["secretsmanager:DescribeSecret"], needs.rotating_secrets),
        _decrypt(needs.decrypt_via, where),
        _allow("AssumeDeclaredRoles", ["sts:AssumeRole"], needs.roles),
    ]
    return [statement for statement in statements if statement]


def _any(resources: set[str]) -> set[str]:
    return {ANY} if resources else set()


def _allow(sid: str, actions: list[str], resources: set[str]) -> Statement:
    if not resources:
        return {}
    ordered = sorted(resources)
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": actions[0] if len(actions) == 1 else actions,
        "Resource": ordered[0] if len(ordered) == 1 else ordered,
    }


def _decrypt(services: set[str], where: Scope) -> Statement:
    if not services:
        return {}
    hosts = sorted(f"{service}.{where.region}.{where.dns_suffix}" for service in services)
    operator = "StringLike" if where.region == ANY else "StringEquals"
    statement = _allow("DecryptThroughDeclaredServices", ["kms:Decrypt"], {ANY})
    statement["Condition"] = {operator: {"kms:ViaService": hosts[0] if len(hosts) == 1 else hosts}}
    return statement


# -- what an object declares ------------------------------------------------------------


def declarations_of(target: object) -> list[Any]:
    """The declarations ``target`` holds: a ``ParametersSecrets`` store, an ASGI or WSGI
    middleware (its store), a Starlette or FastAPI app with that middleware, a mapping of
    key to declaration, or a class whose fields are ``Annotated[T, Parameter(...)]`` (a
    pydantic model, a dataclass: anything with type hints).

    Raises:
        PolicyError: ``target`` declares nothing.
    """
    store = getattr(target, "store", target)
    held = getattr(store, "_declarations", None)
    if isinstance(held, Mapping):
        return list(held.values())
    added = _middleware_values(target)
    if added is not None:
        return declarations_of(added)
    found = _declared_in(target)
    if not found:
        raise PolicyError(
            f"{type(target).__name__} declares no value: give a ParametersSecrets store, a "
            "middleware, a mapping of key to Parameter/Secret/ParametersByPath, or a model "
            "class with Annotated[..., Parameter(...)] fields"
        )
    return found


def _declared_in(target: object) -> list[Any]:
    """The declarations a mapping's values or a class's annotated fields are."""
    if isinstance(target, Mapping):
        return [value for value in target.values() if _is_declaration(value)]
    if isinstance(target, type):
        return _annotated_declarations(target)
    return []


def _middleware_values(app: object) -> object | None:
    """The ``values=`` given to a middleware added with ``app.add_middleware`` (Starlette
    keeps them until the app first starts)."""
    for middleware in getattr(app, "user_middleware", None) or ():
        options = _options(middleware)
        if isinstance(options, Mapping) and "values" in options:
            values: object = options["values"]
            return values
    return None


def _options(middleware: object) -> object:
    """The keyword arguments of a middleware added to a Starlette app."""
    # Starlette >= 0.35 calls them kwargs; older releases, options.
    return getattr(middleware, "kwargs", None) or getattr(middleware, "options", None)


def _is_declaration(value: object) -> bool:
    return isinstance(value, Parameter | Secret | ParametersByPath)


def _annotated_declarations(cls: type) -> list[Declaration]:
    found: list[Declaration] = []
    for hint in _type_hints(cls).values():
        if typing.get_origin(hint) is typing.Annotated:
            found += [m for m in hint.__metadata__ if _is_declaration(m)]
    return found


def _type_hints(cls: type) -> dict[str, Any]:
    """``cls``'s type hints, ``Annotated`` kept, or why they cannot be read."""
    try:
        return typing.get_type_hints(cls, include_extras=True)
    except Exception as exc:  # noqa: BLE001 - an unresolved forward reference, among others
        raise PolicyError(
            f"the type hints of {cls.__name__} could not be read ({type(exc).__name__}: {exc})"
        ) from None
