"""moto's SSM and Secrets Manager in this process, for ``httpx.MockTransport``: the unit
tests of our parsing, retries and time bounds, where no socket or thread may blur a count
and a fault must meet exactly the request it was meant for.

    aws = InProcessMoto()
    aws.put_parameter("/app/key", "v1")
    source = AwsSource(region=aws.region, transport=aws.transport())
    aws.fail(faults.throttle(), match="BatchGetSecretValue", times=2)
    ...
    assert aws.count("GetParameter") == 1

The answers are moto's own (its werkzeug app, as ``moto.server`` builds it, called through
``httpx.WSGITransport``): the same model of AWS the integration tests reach over a socket
(``tests/moto_server.py``: moto in a subprocess behind ``CountingProxy``), here without
one. In front of moto, the handler does what ``CountingProxy`` does: it records each call
(the action, the names or secret ids asked for, the fault met) and plays
``tests/faults.py``'s faults (``match``: the action or a name asked for) with the same
``FaultRules`` and ``inject``. A request not SigV4-signed for this region, or not sent to
its endpoint, is refused before moto sees it (moto itself would answer it: it checks no
signature unless IAM is enforced, which is a process-wide switch).

moto's state is global to the process: each ``InProcessMoto`` empties it when made
(``/moto-api/reset``), so one lives at a time; an older one still in use fails loudly.
The integration servers are other processes, with their own state. moto is imported on
first use (it is heavy): only the tests that make one pay for it.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, ClassVar
from unittest import mock
from urllib.parse import urlsplit

import httpx

from tests import faults
from tests.faults import Fault, FaultRules

__all__ = ["REGION", "Call", "InProcessMoto"]

REGION = "us-east-1"
_JSON = "application/x-amz-json-1.1"
# Where each JSON API's X-Amz-Target prefix is served: the signing name and endpoint.
_SERVICES = {"AmazonSSM": "ssm", "secretsmanager": "secretsmanager"}
_TARGET_PREFIX = {service: prefix for prefix, service in _SERVICES.items()}
# Headers not passed on from moto's answer (httpx and inject() set their own framing).
_FRAMING = frozenset({"content-length", "transfer-encoding", "connection"})


@dataclass(frozen=True)
class Call:
    """One request as the upstream saw it: the AWS action (``GetParameter``...), the
    names or secret ids it asked for, and the fault it met, if any."""

    action: str
    names: tuple[str, ...]
    fault: Fault | None


@functools.cache
def _moto_app() -> httpx.WSGITransport:
    """moto's werkzeug app, as ``ThreadedMotoServer`` builds it, behind a transport (one
    per process: moto builds each service's app on its first request, a second's work)."""
    from moto.moto_server.werkzeug_app import (  # heavy: imported when first used
        DomainDispatcherApplication,
        create_backend_app,
    )

    return httpx.WSGITransport(app=DomainDispatcherApplication(create_backend_app))


def _ask_moto(request: httpx.Request) -> faults.Answer:
    """moto's answer to ``request``: status, headers (without framing) and body."""
    response = _moto_app().handle_request(
        httpx.Request(request.method, request.url, headers=request.headers, content=request.content)
    )
    body = response.read()
    headers = [
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in response.headers.multi_items()
        if name.lower() not in _FRAMING
    ]
    return response.status_code, headers, body


class InProcessMoto:
    """moto's SSM and Secrets Manager at their AWS endpoints in ``region``: ``POST`` with
    ``X-Amz-Target``, SigV4-signed for the right region and service.

    Args:
        region: The region whose endpoints it answers for (values are seeded there).
    """

    _newest: ClassVar[InProcessMoto | None] = None  # the one that last reset moto's state

    def __init__(self, region: str = REGION) -> None:
        self.region = region
        self.calls: list[Call] = []
        # Late or trickled answers the client stopped waiting for (its time bound held).
        self.cut_off = 0
        self._faults = FaultRules()
        InProcessMoto._newest = self
        self._check_answer(
            _ask_moto(httpx.Request("POST", "http://motoapi.amazonaws.com/moto-api/reset"))
        )

    # -- values, through moto's own API ----------------------------------------------

    def put_parameter(self, name: str, value: str, *, type: str = "String") -> int:
        """Add a new version of a parameter; returns its version."""
        answer = self._seed(
            "ssm", "PutParameter", {"Name": name, "Value": value, "Type": type, "Overwrite": True}
        )
        return int(answer["Version"])

    def put_secret(self, secret_id: str, string: str) -> str:
        """Set a secret's current ``SecretString`` (creating the secret if need be): a new
        version, labelled AWSCURRENT; returns its VersionId."""
        if self._has_secret(secret_id):
            answer = self._seed(
                "secretsmanager", "PutSecretValue", {"SecretId": secret_id, "SecretString": string}
            )
        else:
            answer = self._seed(
                "secretsmanager", "CreateSecret", {"Name": secret_id, "SecretString": string}
            )
        return str(answer["VersionId"])

    def rotate_secret(self, secret_id: str, *, every_days: int) -> None:
        """Turn rotation on (``RotateSecret``): ``NextRotationDate`` becomes now (moto's
        clock: see ``wall_clock``) plus ``every_days``. moto has no rotation function to
        run: it labels AWSCURRENT a new version with the current value at once."""
        self._seed(
            "secretsmanager",
            "RotateSecret",
            {
                "SecretId": secret_id,
                "RotationRules": {"AutomaticallyAfterDays": every_days},
                # Copy the current value into the new version (moto leaves it empty else).
                "RotateImmediately": False,
            },
        )

    @contextlib.contextmanager
    def wall_clock(self, clock: Callable[[], float]) -> Iterator[None]:
        """Secrets Manager's dates (``NextRotationDate``, version dates) read ``clock``
        (epoch seconds) meanwhile, not the real time: moto's secretsmanager models call
        ``time.time()``, and only it."""
        from moto.secretsmanager import models

        with mock.patch.object(models, "time", SimpleNamespace(time=clock)):
            yield

    def _has_secret(self, secret_id: str) -> bool:
        status, _, _ = self._setup_call("secretsmanager", "DescribeSecret", {"SecretId": secret_id})
        return status == 200

    def _seed(self, service: str, action: str, document: dict[str, Any]) -> dict[str, Any]:
        answer = self._check_answer(self._setup_call(service, action, document))
        return dict(json.loads(answer))

    def _setup_call(self, service: str, action: str, document: dict[str, Any]) -> faults.Answer:
        """``action`` asked of moto directly (not recorded, never faulted)."""
        self._check_live()
        request = httpx.Request(
            "POST",
            f"https://{service}.{self.region}.amazonaws.com/",
            headers={
                "X-Amz-Target": f"{_TARGET_PREFIX[service]}.{action}",
                "Content-Type": _JSON,
                # moto reads the region and service from the credential scope; it checks
                # no signature while IAM is not enforced.
                "Authorization": (
                    f"AWS4-HMAC-SHA256 Credential=seed/20240101/{self.region}/{service}"
                    "/aws4_request, SignedHeaders=host, Signature=0"
                ),
            },
            content=json.dumps(document).encode(),
        )
        return _ask_moto(request)

    @staticmethod
    def _check_answer(answer: faults.Answer) -> bytes:
        status, _, body = answer
        if status != 200:
            raise RuntimeError(f"moto refused a setup call: {status} {body[:500]!r}")
        return body

    def _check_live(self) -> None:
        if InProcessMoto._newest is not self:
            raise RuntimeError(
                "a newer InProcessMoto reset moto's state (it is global): use one at a time"
            )

    # -- faults and counting -----------------------------------------------------------

    def fail(self, fault: Fault, *, times: int | None = None, match: str | None = None) -> None:
        """Make requests for action or name ``match`` (``None``: every one) meet ``fault``."""
        self._faults.add(fault, times=times, match=match)

    def heal(self) -> None:
        """No more faults."""
        self._faults.clear()

    def count(self, action: str | None = None, name: str | None = None) -> int:
        """Requests received (any outcome) for ``action`` and naming ``name``."""
        return sum(
            1
            for call in self.calls
            if (action is None or call.action == action) and (name is None or name in call.names)
        )

    def transport(self) -> httpx.MockTransport:
        """A transport that sends every request here."""
        return httpx.MockTransport(self.handle)

    # -- answering ---------------------------------------------------------------------

    async def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer ``request`` as moto does, with the fault that applies."""
        self._check_live()
        action, names = _action_and_names(request)
        fault = self._faults.take({action, *names})
        self.calls.append(Call(action, names, fault))

        async def right() -> faults.Answer:
            return self._refusal(request) or _ask_moto(request)

        if fault is None:
            status, headers, body = await right()
            return httpx.Response(status, headers=headers, content=body)
        return await faults.mock_response(fault, request, right, on_cut_off=self._cut)

    def _cut(self) -> None:
        self.cut_off += 1

    def _refusal(self, request: httpx.Request) -> faults.Answer | None:
        """Why AWS would not even look at ``request``, if it would not."""
        prefix = request.headers.get("X-Amz-Target", "").partition(".")[0]
        service = _SERVICES.get(prefix)
        if request.method != "POST" or service is None:
            return _error(400, "UnknownOperationException", prefix)
        if urlsplit(str(request.url)).hostname != f"{service}.{self.region}.amazonaws.com":
            return _error(400, "UnknownOperationException", "wrong endpoint")
        authorization = request.headers.get("Authorization", "")
        if not authorization.startswith("AWS4-HMAC-SHA256 Credential=") or (
            f"/{self.region}/{service}/aws4_request" not in authorization
        ):
            return _error(400, "IncompleteSignatureException", "not signed")
        return None


def _error(status: int, aws_code: str, message: str) -> faults.Answer:
    headers, body = faults.aws_error(faults.status(status, aws_code, message))
    return status, headers, body


def _action_and_names(request: httpx.Request) -> tuple[str, tuple[str, ...]]:
    """The action (``X-Amz-Target``'s last part) and the names or secret ids asked for."""
    action = request.headers.get("X-Amz-Target", "").rpartition(".")[2]
    try:
        document = json.loads(request.content or b"{}")
    except ValueError:
        document = {}
    if not isinstance(document, dict):
        document = {}
    names: list[str] = []
    for key in ("Name", "SecretId"):
        if isinstance(document.get(key), str):
            names.append(document[key])
    for key in ("Names", "SecretIdList"):
        if isinstance(document.get(key), list):
            names += [str(name) for name in document[key]]
    return action, tuple(names)
