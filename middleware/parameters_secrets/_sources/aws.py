"""SSM and Secrets Manager called directly over their JSON APIs, SigV4-signed, with httpx."""

from __future__ import annotations

import functools
import json
import os
import ssl
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar
from urllib.parse import urlsplit

from .. import __name__ as _package
from .. import __version__
from .._concurrency import PerLoop, concurrently
from .._credentials import CredentialsProvider
from .._declarations import ParameterRequest, PathRequest, SecretRequest, ValueRequest
from .._http import httpx
from .._settings import Settings
from .._sigv4 import Credentials, sign
from ..exceptions import ConfigurationError, FetchError
from . import Outcome, give_up_time
from ._bounded import parse_answer, send_bounded
from ._endpoints import Region, configured_region, profile_region, service_endpoint
from ._errors import THROTTLING_CODES, error_code, is_transient
from ._records import checked_record
from ._retry import RetryPolicy, is_throttling, within_time_bound

if TYPE_CHECKING:
    from .._assumed import AssumedRoles

PARAMETERS_PER_BATCH = 10  # GetParameters' limit
PARAMETERS_PER_PAGE = 10  # GetParametersByPath's MaxResults limit
# A path of more pages than this (100,000 parameters) is not read to the end: bounded.
MAX_PAGES = 10_000
SECRETS_PER_BATCH = 20  # BatchGetSecretValue's limit
_NOT_ALLOWED = frozenset({"AccessDeniedException", "AccessDenied", "UnauthorizedOperation"})
_USER_AGENT = f"{_package}/{__version__}"
_ssl_context: ssl.SSLContext | None = None
R = TypeVar("R", ParameterRequest, SecretRequest, PathRequest)
# Plans one kind's calls for a group of requests under one set of credentials, writing
# each request's outcome: what _fetch_kind runs per role.
_Plan: TypeAlias = Callable[
    [list[R], Credentials, float, dict[ValueRequest, Outcome]], list[Awaitable[None]]
]


def _shared_ssl_context() -> ssl.SSLContext:
    # Building a context with the CA bundle costs 18-35 ms: one per process serves all.
    global _ssl_context  # noqa: PLW0603 - one per process
    if _ssl_context is None:
        _ssl_context = httpx.create_ssl_context()
    return _ssl_context


class _Service:
    """One AWS JSON API: its endpoint, signing name, target prefix and pooled client."""

    def __init__(self, name: str, target_prefix: str, endpoint: str) -> None:
        self.name = name
        self.target_prefix = target_prefix
        # An endpoint with a path (Cloud Extensions' /parameterstore) is posted to as it
        # is written; a bare host gets the JSON APIs' "/".
        path = urlsplit(endpoint).path
        self.endpoint = endpoint.rstrip("/") + "/" if path in ("", "/") else endpoint
        self.loopback = urlsplit(endpoint).hostname in ("127.0.0.1", "localhost", "::1")
        self.clients: PerLoop[httpx.AsyncClient] | None = None


class AwsSource:
    """Fetch values from SSM and Secrets Manager directly, without the Lambda layer.

    Requests are signed with SigV4 by this package (no boto3 or botocore import on this
    path). The first load batches: ``GetParameters`` (10 names a call) and
    ``BatchGetSecretValue`` (20 ids), falling back to ``GetParameter`` /
    ``GetSecretValue`` when the role may not call the batch actions. Failed calls are
    retried per ``retry`` (throttling until the fetch's time bound, 5xx, connection errors
    and malformed answers a few times, with full jitter), and every fetch ends by its time
    bound: the timeout settings, the Lambda's remaining time, else 10 s.

    Args:
        region: The AWS region; default ``AWS_REGION``, ``AWS_DEFAULT_REGION``, then
            botocore's profile if botocore is installed. It must be a region name (one
            DNS host label, as botocore checks): else ``ConfigurationError`` naming
            ``region=`` or the variable (a profile's is found on the first fetch, and
            reported as ``FetchError`` ``InvalidRegion``).
        endpoint_url: One endpoint for both services (a local server, moto); default
            ``AWS_ENDPOINT_URL_SSM`` / ``AWS_ENDPOINT_URL_SECRETS_MANAGER``, then
            ``AWS_ENDPOINT_URL``, then AWS's.
        settings: Timeouts and ``max_connections``; default ``Settings.from_env()``.
        credentials: Fixed credentials; default ``AWS_ACCESS_KEY_ID`` /
            ``AWS_SECRET_ACCESS_KEY``, then the container credentials endpoint (ECS, EKS
            Pod Identity, Lambda SnapStart), then botocore's chain if installed.
        retry: When and how long to wait before trying a failed call again; default
            :class:`RetryPolicy` (throttling until the time bound, other transient
            failures 3 tries in all).
        transport: An httpx transport to send requests through (tests:
            ``httpx.MockTransport``); default a connection pool per service.

    Attributes:
        batch_parameters: Whether to batch parameters (``GetParameters``); turns ``False``
            by itself when the role may not call it. Set it to skip batching.
        batch_secrets: Whether to batch secrets (``BatchGetSecretValue``); likewise.
    """

    # Its records hold a usable value for what was asked: the store need not check.
    checks_records = True

    def __init__(
        self,
        region: str | None = None,
        endpoint_url: str | None = None,
        *,
        settings: Settings | None = None,
        credentials: Credentials | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings if settings is not None else Settings.from_env()
        self.retry = retry if retry is not None else RetryPolicy()
        self._transport = transport
        # Validated here, before any URL is built from it: a region is a host label.
        self._region: Region | None = configured_region(region)
        if endpoint_url is not None and not endpoint_url.startswith(("http://", "https://")):
            raise ConfigurationError(f"endpoint_url must be an http(s) URL, not {endpoint_url!r}")
        self._endpoint_url = endpoint_url
        self._credentials = CredentialsProvider(credentials)
        # Credentials of the roles values are read through (role_arn=): made on first use.
        self._roles: AssumedRoles | None = None
        self._roles_lock = threading.Lock()
        # By signing name ("ssm", "secretsmanager"); both set at once, on the first fetch.
        self._services: dict[str, _Service] = {}
        # Cleared when the role turns out not to be allowed the batch actions.
        self.batch_parameters = True
        self.batch_secrets = True

    def __repr__(self) -> str:
        # The endpoints asked (or that would be: the variables as they are now), so the
        # INFO line at startup says where values come from, AWS_ENDPOINT_URL included.
        ssm = self._endpoint("AWS_ENDPOINT_URL_SSM", "ssm", self._region)
        secrets = self._endpoint("AWS_ENDPOINT_URL_SECRETS_MANAGER", "secretsmanager", self._region)
        if ssm == secrets:
            return f"AwsSource(region={self._region!r}, endpoint_url={ssm!r})"
        return f"AwsSource(region={self._region!r}, ssm={ssm!r}, secretsmanager={secrets!r})"

    def _endpoint(self, variable: str, service: str, region: Region | None) -> str | None:
        """The endpoint of ``service``: ``endpoint_url=``, the service's variable, the
        common one, then AWS's in ``region`` (``None``: no region known yet)."""
        if self._services:
            return self._services[service].endpoint
        configured = self._configured_endpoint(variable)
        return configured or (service_endpoint(service, region) if region is not None else None)

    def _configured_endpoint(self, variable: str) -> str | None:
        """The endpoint configured for a service: ``endpoint_url=``, the service's
        ``variable``, then ``AWS_ENDPOINT_URL``; ``None``: AWS's."""
        return self._endpoint_url or os.environ.get(variable) or os.environ.get("AWS_ENDPOINT_URL")

    async def aclose(self) -> None:
        """Close the connection pools."""
        for service in self._services.values():
            if service.clients is not None:
                await service.clients.aclose()

    async def fetch(
        self, requests: Sequence[ValueRequest], deadline: float | None = None
    ) -> list[Outcome]:
        """Fetch every request, batching what can be batched, all calls concurrently.

        Each kind of value (parameters, secrets) ends by its own time bound, the wait for
        credentials included.
        """
        outcomes: dict[ValueRequest, Outcome] = {}
        parameters_by = give_up_time(self._settings.parameter_timeout_ms, deadline)
        secrets_by = give_up_time(self._settings.secret_timeout_ms, deadline)
        await concurrently(
            [
                *self._kind(
                    requests, ParameterRequest, parameters_by, self._parameter_calls, outcomes
                ),
                *self._kind(requests, PathRequest, parameters_by, self._path_calls, outcomes),
                *self._kind(requests, SecretRequest, secrets_by, self._secret_calls, outcomes),
            ]
        )
        return [outcomes[r] for r in requests]

    def _kind(
        self,
        requests: Sequence[ValueRequest],
        kind: type[R],
        give_up_at: float,
        plan: _Plan[R],
        outcomes: dict[ValueRequest, Outcome],
    ) -> list[Awaitable[None]]:
        """The fetch of the requests of one kind, if there are any."""
        of_kind = [r for r in requests if isinstance(r, kind)]
        return [self._fetch_kind(of_kind, give_up_at, plan, outcomes)] if of_kind else []

    async def describe_secrets(
        self, requests: Sequence[SecretRequest], deadline: float | None = None
    ) -> list[Outcome]:
        """``DescribeSecret`` for each secret, concurrently, within the secrets' time bound:
        its answer (``NextRotationDate``, ``VersionIdsToStages``...) or a
        :class:`FetchError`. What ``Secret(..., follow_rotation=True)`` revalidates with."""
        outcomes: dict[ValueRequest, Outcome] = {}
        by = give_up_time(self._settings.secret_timeout_ms, deadline)
        await self._fetch_kind(list(requests), by, self._describe_calls, outcomes)
        return [outcomes[r] for r in requests]

    async def _fetch_kind(
        self,
        requests: list[R],
        give_up_at: float,
        plan: _Plan[R],
        outcomes: dict[ValueRequest, Outcome],
    ) -> None:
        """Every call for one kind of value, ending by ``give_up_at`` (every call, retry,
        fallback and the wait for credentials); batched per role, each role's calls
        signed with its own credentials."""
        by_role: dict[str | None, list[R]] = {}
        for request in requests:
            by_role.setdefault(request.role_arn, []).append(request)
        await concurrently(
            [
                self._fetch_as(role, group, give_up_at, plan, outcomes)
                for role, group in by_role.items()
            ]
        )

    async def _fetch_as(
        self,
        role_arn: str | None,
        requests: list[R],
        give_up_at: float,
        plan: _Plan[R],
        outcomes: dict[ValueRequest, Outcome],
    ) -> None:
        try:
            credentials = await self._credentials.get(give_up_at)
            self._resolve_services()
            if role_arn is not None:
                credentials = await self._assumed_role(role_arn, credentials, give_up_at)
        except FetchError as error:
            outcomes.update(dict.fromkeys(requests, error))
            return
        await concurrently(plan(requests, credentials, give_up_at, outcomes))

    async def _assumed_role(
        self, role_arn: str, own: Credentials, give_up_at: float
    ) -> Credentials:
        """``role_arn``'s credentials, from STS ``AssumeRole`` signed with ``own``."""
        from .._assumed import AssumedRoles, sts_endpoint  # only for values with a role

        with self._roles_lock:
            if self._roles is None:
                self._roles = AssumedRoles(transport=self._transport)
            roles = self._roles
        assert self._region is not None  # noqa: S101 - resolved with the services
        return await roles.get(
            role_arn,
            caller=own,
            region=self._region,
            endpoint=sts_endpoint(self._region, self._endpoint_url),
            give_up_at=give_up_at,
        )

    # -- planning -----------------------------------------------------------------

    def _parameter_calls(
        self,
        requests: list[ParameterRequest],
        credentials: Credentials,
        give_up_at: float,
        outcomes: dict[ValueRequest, Outcome],
    ) -> list[Awaitable[None]]:
        batches, singles = self._parameter_batches(requests)
        calls: list[Awaitable[None]] = []
        for batch in batches.values():
            chunks, alone = _batches(list(batch.values()), PARAMETERS_PER_BATCH)
            calls += [self._get_parameters(c, credentials, give_up_at, outcomes) for c in chunks]
            singles += alone
        calls += [self._get_parameter(r, credentials, give_up_at, outcomes) for r in singles]
        return calls

    def _parameter_batches(
        self, requests: list[ParameterRequest]
    ) -> tuple[dict[bool, dict[str, ParameterRequest]], list[ParameterRequest]]:
        """The parameters ``GetParameters`` can fetch together (by ``decrypt``, by name),
        and those fetched one by one."""
        singles: list[ParameterRequest] = []
        batches: dict[bool, dict[str, ParameterRequest]] = {}
        for request in dict.fromkeys(requests):
            batch = batches.setdefault(request.decrypt, {})
            # References to Secrets Manager are not served by GetParameters, and one name
            # twice in a call (two versions) could not be told apart in the answer.
            if (
                self.batch_parameters
                and not request.name.startswith("/aws/reference/")
                and request.name not in batch
            ):
                batch[request.name] = request
            else:
                singles.append(request)
        return batches, singles

    def _secret_calls(
        self,
        requests: list[SecretRequest],
        credentials: Credentials,
        give_up_at: float,
        outcomes: dict[ValueRequest, Outcome],
    ) -> list[Awaitable[None]]:
        chunks, singles = self._secret_batches(requests)
        calls: list[Awaitable[None]] = [
            self._batch_get_secrets(c, credentials, give_up_at, outcomes) for c in chunks
        ]
        calls += [self._get_secret(r, credentials, give_up_at, outcomes) for r in singles]
        return calls

    def _secret_batches(
        self, requests: list[SecretRequest]
    ) -> tuple[list[list[SecretRequest]], list[SecretRequest]]:
        """The secrets ``BatchGetSecretValue`` can fetch together, in calls of
        ``SECRETS_PER_BATCH`` at most, and those fetched one by one."""
        unique = list(dict.fromkeys(requests))
        # BatchGetSecretValue returns AWSCURRENT only: pinned versions go one by one.
        batchable = [r for r in unique if self.batch_secrets and not r.pinned]
        chunks, alone = _batches(batchable, SECRETS_PER_BATCH)
        return chunks, [r for r in unique if r not in batchable] + alone

    def _describe_calls(
        self,
        requests: list[SecretRequest],
        credentials: Credentials,
        give_up_at: float,
        outcomes: dict[ValueRequest, Outcome],
    ) -> list[Awaitable[None]]:
        return [
            self._describe_secret(r, credentials, give_up_at, outcomes)
            for r in dict.fromkeys(requests)
        ]

    def _path_calls(
        self,
        requests: list[PathRequest],
        credentials: Credentials,
        give_up_at: float,
        outcomes: dict[ValueRequest, Outcome],
    ) -> list[Awaitable[None]]:
        return [
            self._get_parameters_by_path(r, credentials, give_up_at, outcomes) for r in requests
        ]

    # -- single calls -------------------------------------------------------------

    async def _get_parameter(
        self,
        request: ParameterRequest,
        credentials: Credentials,
        give_up_at: float,
        outcomes: dict[ValueRequest, Outcome],
    ) -> None:
        body = {"Name": _selector_name(request), "WithDecryption": request.decrypt}
        answer = await self._call(self._ssm_service, "GetParameter", body, credentials, give_up_at)
        outcomes[request] = _record(answer, request, lambda a: a.get("Parameter"))

    async def _get_secret(
        self,
        request: SecretRequest,
        credentials: Credentials,
        give_up_at: float,
        outcomes: dict[ValueRequest, Outcome],
    ) -> None:
        body: dict[str, Any] = {"SecretId": request.secret_id}
        if request.version_stage is not None:
            body["VersionStage"] = request.version_stage
        if request.version_id is not None:
            body["VersionId"] = request.version_id
        answer = await self._call(
            self._secrets_service, "GetSecretValue", body, credentials, give_up_at
        )
        outcomes[request] = _record(answer, request, lambda a: a)

    async def _describe_secret(
        self,
        request: SecretRequest,
        credentials: Credentials,
        give_up_at: float,
        outcomes: dict[ValueRequest, Outcome],
    ) -> None:
        body = {"SecretId": request.secret_id}
        answer = await self._call(
            self._secrets_service, "DescribeSecret", body, credentials, give_up_at
        )
        if isinstance(answer, FetchError):
            answer = FetchError(
                f"{request.describe()}: {answer}",
                code=answer.code,
                transient=answer.transient,
                status=answer.status,
            )
        outcomes[request] = answer

    async def _get_parameters_by_path(
        self,
        request: PathRequest,
        credentials: Credentials,
        give_up_at: float,
        outcomes: dict[ValueRequest, Outcome],
    ) -> None:
        """Every page of ``GetParametersByPath``, each call retried as any other (its quota
        is shared with ``GetParameter``), all of them within ``give_up_at``."""
        body: dict[str, Any] = {
            "Path": request.path,
            "Recursive": request.recursive,
            "WithDecryption": request.decrypt,
            "MaxResults": PARAMETERS_PER_PAGE,
        }
        parameters: list[Any] = []
        for _ in range(MAX_PAGES):
            answer = await self._call(
                self._ssm_service, "GetParametersByPath", body, credentials, give_up_at
            )
            if isinstance(answer, FetchError):
                outcomes[request] = _record(answer, request, lambda a: a)
                return
            page = answer.get("Parameters")
            parameters += page if isinstance(page, list) else []
            token = answer.get("NextToken")
            if not token:
                record = {"Path": request.path, "Parameters": parameters}
                outcomes[request] = checked_record(request, record)
                return
            body["NextToken"] = token
        outcomes[request] = FetchError(
            f"{request.describe()}: more than {MAX_PAGES} pages",
            code="TooManyParameters",
        )

    # -- batches ------------------------------------------------------------------

    async def _get_parameters(
        self,
        requests: list[ParameterRequest],
        credentials: Credentials,
        give_up_at: float,
        outcomes: dict[ValueRequest, Outcome],
    ) -> None:
        """One ``GetParameters`` call; what its answer does not settle is asked alone."""
        body = {
            "Names": [_selector_name(r) for r in requests],
            "WithDecryption": requests[0].decrypt,
        }
        answer = await self._call(self._ssm_service, "GetParameters", body, credentials, give_up_at)
        if isinstance(answer, FetchError):
            if answer.code in _NOT_ALLOWED:
                self.batch_parameters = False  # least privilege: ssm:GetParameter only
            if answer.transient:
                outcomes.update(dict.fromkeys(requests, answer))
                return
            # Not allowed, or one bad name spoiling the call: one by one, so that a bad
            # name fails only its own key.
        else:
            outcomes.update(_parameters_answered(requests, answer))
        # Anything the answer did not account for (a name spelled another way): ask alone.
        await self._ask_alone(self._get_parameter, requests, credentials, give_up_at, outcomes)

    async def _batch_get_secrets(
        self,
        requests: list[SecretRequest],
        credentials: Credentials,
        give_up_at: float,
        outcomes: dict[ValueRequest, Outcome],
    ) -> None:
        """``BatchGetSecretValue`` page by page; what its answers do not settle is asked
        alone, unless the batch failed in a way asking alone would fail too."""
        failure = await self._read_secret_pages(requests, credentials, give_up_at, outcomes)
        if failure is not None and self._settles_batch(failure):
            for request in requests:
                outcomes.setdefault(request, failure)
            return
        await self._ask_alone(self._get_secret, requests, credentials, give_up_at, outcomes)

    async def _read_secret_pages(
        self,
        requests: list[SecretRequest],
        credentials: Credentials,
        give_up_at: float,
        outcomes: dict[ValueRequest, Outcome],
    ) -> FetchError | None:
        """Every page of one ``BatchGetSecretValue``, writing the outcomes each settles;
        the failure that ended it early, if one did."""
        body: dict[str, Any] = {"SecretIdList": [r.secret_id for r in requests]}
        for _ in range(len(requests) + 1):  # NextToken pages; bounded
            answer = await self._batch_get_secrets_page(body, credentials, give_up_at)
            if isinstance(answer, FetchError):
                return answer
            for found, outcome in _secrets_answered(requests, answer).items():
                outcomes.setdefault(found, outcome)
            token = answer.get("NextToken")
            if not token:
                return None
            body["NextToken"] = token
        return None

    async def _batch_get_secrets_page(
        self, body: dict[str, Any], credentials: Credentials, give_up_at: float
    ) -> dict[str, Any] | FetchError:
        # BatchGetSecretValue has a far lower quota (100/s) than GetSecretValue
        # (10,000/s): a throttled batch is not retried but asked again value by value.
        return await self._call(
            self._secrets_service,
            "BatchGetSecretValue",
            body,
            credentials,
            give_up_at,
            retry_throttling=False,
        )

    def _settles_batch(self, error: FetchError) -> bool:
        """Whether a failed ``BatchGetSecretValue`` is every secret's outcome: a transient
        failure other than throttling (asked alone, each would meet it too)."""
        if error.code in _NOT_ALLOWED:
            self.batch_secrets = False  # secretsmanager:GetSecretValue only
        return error.transient and error.code not in THROTTLING_CODES

    async def _ask_alone(
        self,
        single: Callable[[R, Credentials, float, dict[ValueRequest, Outcome]], Awaitable[None]],
        requests: list[R],
        credentials: Credentials,
        give_up_at: float,
        outcomes: dict[ValueRequest, Outcome],
    ) -> None:
        """The remainder of a batch (``requests`` without an outcome yet), one call each."""
        missing = [r for r in requests if r not in outcomes]
        await concurrently([single(r, credentials, give_up_at, outcomes) for r in missing])

    # -- transport ----------------------------------------------------------------

    def _resolve_services(self) -> None:
        if self._services:
            return
        region = self._region or profile_region()
        if region is None:
            raise FetchError(
                "no AWS region: set AWS_REGION or pass AwsSource(region=...)", code="NoRegion"
            )
        self._region = region

        def endpoint(variable: str, service: str) -> str:
            return self._endpoint(variable, service, region) or service_endpoint(service, region)

        self._services = {
            "ssm": _Service("ssm", "AmazonSSM", endpoint("AWS_ENDPOINT_URL_SSM", "ssm")),
            "secretsmanager": _Service(
                "secretsmanager",
                "secretsmanager",
                endpoint("AWS_ENDPOINT_URL_SECRETS_MANAGER", "secretsmanager"),
            ),
        }

    @property
    def _ssm_service(self) -> _Service:
        return self._services["ssm"]  # set before any call

    @property
    def _secrets_service(self) -> _Service:
        return self._services["secretsmanager"]  # set before any call

    async def _client(self, service: _Service) -> httpx.AsyncClient:
        if service.clients is None:
            # No reference back to self from the pool (see PerLoop).
            make = functools.partial(
                _service_client,
                https=service.endpoint.startswith("https"),
                transport=self._transport,
                limit=self._settings.max_connections,
                proxies=not service.loopback,
            )
            service.clients = PerLoop(make, httpx.AsyncClient.aclose)
        return await service.clients.get()

    async def _call(
        self,
        service: _Service,
        action: str,
        body: dict[str, Any],
        credentials: Credentials,
        give_up_at: float,
        *,
        retry_throttling: bool = True,
    ) -> dict[str, Any] | FetchError:
        """One API call, retried per ``self.retry``, ending by ``give_up_at`` whatever happens."""
        client = await self._client(service)
        payload = json.dumps(body).encode()
        target = f"{service.target_prefix}.{action}"

        async def attempt() -> dict[str, Any] | FetchError:
            headers = sign(
                "POST",
                service.endpoint,
                {
                    "Content-Type": "application/x-amz-json-1.1",
                    "X-Amz-Target": target,
                    "User-Agent": _USER_AGENT,
                },
                payload,
                credentials=credentials,
                region=self._region or "",
                service=service.name,
            )
            request = client.build_request(
                "POST", service.endpoint, content=payload, headers=headers
            )
            try:
                response = await send_bounded(client, request, what=f"{action}'s answer")
                answer = (
                    parse_answer(response.body, what=f"{action}'s answer")
                    if response.status == 200
                    else None
                )
            except FetchError as error:
                return error
            except httpx.TransportError as exc:
                return FetchError(
                    f"{action}: connection failed ({type(exc).__name__})",
                    code="ConnectionError",
                    transient=True,
                )
            if response.status == 200:
                if isinstance(answer, dict):
                    return answer
                return FetchError(
                    f"{action}: the answer is not a JSON object",
                    code="MalformedResponse",
                    transient=True,
                )
            code, message = error_code(
                response.status, response.text, response.headers.get("x-amzn-errortype")
            )
            return FetchError(
                f"{action}: {code} (HTTP {response.status})" + (f": {message}" if message else ""),
                code=code,
                transient=is_transient(response.status, code),
                status=response.status,
            )

        def retries(error: FetchError, attempt: int) -> bool:
            if is_throttling(error) and not retry_throttling:
                return False
            return self.retry.retries(error, attempt)

        return await within_time_bound(
            attempt,
            give_up_at=give_up_at,
            retries=retries,
            delay=self.retry.delay,
            timed_out=lambda: FetchError(f"{action} timed out", code="Timeout", transient=True),
        )


def _service_client(
    *, https: bool, transport: httpx.AsyncBaseTransport | None, limit: int, proxies: bool
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=transport,
        verify=_shared_ssl_context() if https else False,
        # HTTPS_PROXY may be how this network reaches AWS; a loopback endpoint (a local
        # server, Cloud Extensions) is never reached through a proxy.
        trust_env=proxies,
        timeout=None,
        limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
    )


def _parameters_answered(
    requests: list[ParameterRequest], answer: dict[str, Any]
) -> dict[ValueRequest, Outcome]:
    """The outcomes a ``GetParameters`` answer settles: its parameters, matched by name or
    ARN (a pinned version only if it is the one answered), and its invalid names."""
    settled = _parameters_found(requests, _objects(answer.get("Parameters")))
    by_name = {_selector_name(r): r for r in requests}
    for name in answer.get("InvalidParameters") or []:
        match = by_name.get(name)
        if match is not None:
            settled.setdefault(match, _not_found(match))
    return settled


def _parameters_found(
    requests: list[ParameterRequest], parameters: list[dict[str, Any]]
) -> dict[ValueRequest, Outcome]:
    """The requests ``GetParameters``' ``parameters`` answer, matched by name or ARN (a
    pinned version only if it is the one answered)."""
    by_plain_name = {r.name: r for r in requests}  # unique within a batch
    settled: dict[ValueRequest, Outcome] = {}
    for parameter in parameters:
        match = _answered_request(by_plain_name, parameter)
        if match is not None:
            settled.setdefault(match, checked_record(match, parameter))
    return settled


def _answered_request(
    by_plain_name: dict[str, ParameterRequest], parameter: dict[str, Any]
) -> ParameterRequest | None:
    """The request one parameter of a ``GetParameters`` answer is for, by its name or
    ARN; a pinned version only if it is the one answered."""
    match = by_plain_name.get(str(parameter.get("Name"))) or by_plain_name.get(
        str(parameter.get("ARN"))
    )
    if match is None or match.version not in (None, parameter.get("Version")):
        return None
    return match


def _secrets_answered(
    requests: list[SecretRequest], answer: dict[str, Any]
) -> dict[ValueRequest, Outcome]:
    """The outcomes one ``BatchGetSecretValue`` page settles: its values, matched by name
    or ARN, and its per-secret errors."""
    by_id = {r.secret_id: r for r in requests}
    settled: dict[ValueRequest, Outcome] = {}
    for value in _objects(answer.get("SecretValues")):
        for found in _asked(by_id, value.get("Name"), value.get("ARN")):
            settled.setdefault(found, checked_record(found, value))
    _settle_secret_errors(by_id, answer, settled)
    return settled


def _settle_secret_errors(
    by_id: dict[str, SecretRequest], answer: dict[str, Any], settled: dict[ValueRequest, Outcome]
) -> None:
    """The outcomes a ``BatchGetSecretValue`` page's per-secret ``Errors`` settle."""
    for error in _objects(answer.get("Errors")):
        for found in _asked(by_id, error.get("SecretId")):
            settled.setdefault(found, _secret_error(found, error))


def _asked(by_id: dict[str, SecretRequest], *ids: object) -> list[SecretRequest]:
    """The requests an answer's ids (its name, its ARN) name."""
    return [by_id[i] for i in ids if isinstance(i, str) and i in by_id]


def _objects(items: Any) -> list[dict[str, Any]]:
    """The JSON objects of an answer's list (none if it is missing or not a list)."""
    return [item for item in items or [] if isinstance(item, dict)]


def _not_found(request: ParameterRequest) -> FetchError:
    return FetchError(
        f"{request.describe()}: ParameterNotFound", code="ParameterNotFound", status=200
    )


def _secret_error(request: SecretRequest, error: dict[str, Any]) -> FetchError:
    code = str(error.get("ErrorCode") or "UnknownError")
    return FetchError(
        f"{request.describe()}: {code}: {str(error.get('Message') or '')[:300]}",
        code=code,
        transient=is_transient(None, code),
    )


def _batches(items: list[R], size: int) -> tuple[list[list[R]], list[R]]:
    """``items`` in calls of ``size`` (2 or more) at most; a call of one goes alone, as a
    single call."""
    chunks = [items[start : start + size] for start in range(0, len(items), size)]
    # Only the last call can be short, so only it can hold one item.
    alone = chunks.pop() if chunks and len(chunks[-1]) == 1 else []
    return chunks, alone


def _selector_name(request: ParameterRequest) -> str:
    if request.version is not None:
        return f"{request.name}:{request.version}"
    if request.label is not None:
        return f"{request.name}:{request.label}"
    return request.name


def _record(answer: dict[str, Any] | FetchError, request: ValueRequest, pick: Any) -> Outcome:
    if isinstance(answer, FetchError):
        return FetchError(
            f"{request.describe()}: {answer}",
            code=answer.code,
            transient=answer.transient,
            status=answer.status,
        )
    return checked_record(request, pick(answer))  # type: ignore[no-any-return]
