"""Values read through another role (``role_arn=``, issue 20 item 1): STS ``AssumeRole``
against moto's server, counted at a proxy; one call per role for any number of threads;
the value signed with the assumed key; a separate cache entry per role; a refusal naming
the role; re-assumed 5 minutes before expiry; through the middleware under Mangum."""

from __future__ import annotations

import json
import threading
import time
from typing import Any
from urllib.parse import parse_qs

import pytest
from apig_wsgi import make_lambda_handler
from mangum import Mangum
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from parameters_secrets import (
    ConfigurationError,
    LoadError,
    Parameter,
    ParametersByPath,
    ParametersSecrets,
    ParametersSecretsMiddleware,
    ParametersSecretsWSGIMiddleware,
    Secret,
)
from parameters_secrets._assumed import REFRESH_BEFORE_EXPIRY_SECONDS, AssumedRoles
from parameters_secrets._rotation import REVALIDATE_SECONDS
from parameters_secrets._sources._endpoints import Region
from parameters_secrets.sources import AwsSource, Credentials, ExtensionSource
from tests.conftest import FakeClock
from tests.extension_server import FakeExtension
from tests.lambda_events import invoke
from tests.moto_server import (
    ACCOUNT,
    REGION,
    CountingProxy,
    MotoServer,
    ProxiedRequest,
    create_iam_user,
    create_secret,
    put_parameter,
    put_secret_value,
)

ROLE = f"arn:aws:iam::{ACCOUNT}:role/reader"
OTHER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/path/other-reader"
OWN_KEY = "testing"  # the function's own access key (conftest's moto credentials)


@pytest.fixture(autouse=True)
def function_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", OWN_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", OWN_KEY)
    monkeypatch.setenv("AWS_REGION", REGION)
    for variable in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS"):
        monkeypatch.delenv(variable, raising=False)


def assume_role_requests(proxy: CountingProxy) -> list[ProxiedRequest]:
    """The STS Query API calls the proxy saw (no X-Amz-Target: the form's Action)."""
    return [r for r in proxy.requests if parse_qs(r.body.decode()).get("Action") == ["AssumeRole"]]


def signing_key(request: ProxiedRequest) -> str:
    """The access key id in a request's SigV4 ``Authorization`` header."""
    return request.headers["Authorization"].split("Credential=", 1)[1].split("/", 1)[0]


def seed_values(moto: MotoServer) -> None:
    put_parameter(moto, "/other/key", "their-key")
    create_secret(moto, "prod/db", string=json.dumps({"password": "pw-1"}))


# --- the declarations ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "argument"),
    [
        (lambda arn: Parameter("/k", role_arn=arn), "Parameter role_arn"),
        (lambda arn: Secret("s", role_arn=arn), "Secret role_arn"),
        (lambda arn: ParametersByPath("/p", role_arn=arn), "ParametersByPath role_arn"),
    ],
)
@pytest.mark.parametrize(
    "wrong",
    [
        "reader",
        "arn:aws:iam::123:role/reader",  # not a 12-digit account
        "arn:aws:iam::123456789012:user/reader",  # a user, not a role
        "arn:aws:sts::123456789012:assumed-role/reader/session",
        "arn:aws:iam::123456789012:role/",
        "arn:aws:iam::123456789012:role/a b",
        42,
    ],
)
def test_a_role_arn_that_is_not_a_role_s_arn_is_refused_naming_the_argument(
    make: object, argument: str, wrong: object
) -> None:
    with pytest.raises(ConfigurationError, match=argument):
        make(wrong)  # type: ignore[operator]


def test_the_role_is_part_of_the_request_identity_and_of_its_description() -> None:
    own, theirs = Secret("prod/db"), Secret("prod/db", role_arn=ROLE)
    assert own.request != theirs.request
    assert theirs.request.describe() == f"secret prod/db via role {ROLE}"
    assert Parameter("/k", role_arn=OTHER_ROLE).request.describe() == (
        f"parameter /k via role {OTHER_ROLE}"
    )
    assert ParametersByPath("/p/", role_arn=ROLE).request.describe() == (
        f"parameters under /p via role {ROLE}"
    )
    assert Parameter("/k").request.describe() == "parameter /k"  # unchanged without one
    # Partitions other than aws, and role paths, are role ARNs too.
    assert Secret("s", role_arn="arn:aws-cn:iam::123456789012:role/a/b/c").role_arn


# --- AssumeRole against moto --------------------------------------------------------


def test_fifty_threads_on_a_cold_store_make_one_assume_role(
    moto: MotoServer, moto_proxy: CountingProxy
) -> None:
    seed_values(moto)
    for index in range(10):
        put_parameter(moto, f"/other/p{index}", f"value-{index}")
    values: dict[str, Parameter | Secret] = {
        f"p{i}": Parameter(f"/other/p{i}", role_arn=ROLE) for i in range(10)
    }
    values["db"] = Secret("prod/db", transform="json", role_arn=ROLE)
    store = ParametersSecrets(values, source=AwsSource(REGION, endpoint_url=moto_proxy.url))
    start = threading.Barrier(50)
    seen: list[object] = []
    errors: list[BaseException] = []

    def reader(index: int) -> None:
        try:
            start.wait(timeout=10)
            # Different keys at once: several fetches in flight, each needing the role.
            seen.append(store.get_sync(f"p{index % 10}"))
            seen.append(store.load_sync().db["password"])
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert sorted(set(map(str, seen))) == sorted(["pw-1", *(f"value-{i}" for i in range(10))])
    assert len(assume_role_requests(moto_proxy)) == 1


def test_the_value_is_signed_with_the_assumed_key_and_the_sts_call_with_the_own(
    moto: MotoServer, moto_proxy: CountingProxy
) -> None:
    seed_values(moto)
    store = ParametersSecrets(
        {"db": Secret("prod/db", transform="json", role_arn=ROLE)},
        source=AwsSource(REGION, endpoint_url=moto_proxy.url),
    )
    assert store.load_sync().db["password"] == "pw-1"
    (assume,) = assume_role_requests(moto_proxy)
    assert signing_key(assume) == OWN_KEY
    assert parse_qs(assume.body.decode())["RoleArn"] == [ROLE]
    (read,) = [r for r in moto_proxy.requests if r.target == "secretsmanager.GetSecretValue"]
    assumed_key = signing_key(read)
    assert assumed_key != OWN_KEY
    assert assumed_key.startswith("ASIA")  # moto's temporary keys, as AWS's
    assert read.headers.get("X-Amz-Security-Token")  # the session token travels with it


def test_a_followed_secret_with_a_role_is_described_and_read_with_the_assumed_key(
    moto: MotoServer, moto_proxy: CountingProxy
) -> None:
    create_secret(moto, "prod/db", string="v1")
    client = moto.client("secretsmanager")
    client.rotate_secret(
        SecretId="prod/db", RotationRules={"AutomaticallyAfterDays": 1}, RotateImmediately=False
    )
    date = client.describe_secret(SecretId="prod/db")["NextRotationDate"].timestamp()
    # Past the rotation date: every read after REVALIDATE_SECONDS describes it again.
    monotonic, wall = FakeClock(), FakeClock(date + 1)
    declared = Secret("prod/db", role_arn=ROLE, follow_rotation=True)
    assert declared.request.describe() == f"secret prod/db following its rotation via role {ROLE}"
    store = ParametersSecrets(
        {"db": declared},
        source=AwsSource(REGION, endpoint_url=moto_proxy.url),
        clock=monotonic,
        wall_clock=wall,
    )
    assert store.load_sync().db == "v1"
    put_secret_value(moto, "prod/db", string="v2")  # the rotation completes
    monotonic.advance(REVALIDATE_SECONDS)
    wall.advance(REVALIDATE_SECONDS)
    assert store.get_sync("db") == "v2"
    (assume,) = assume_role_requests(moto_proxy)
    assert signing_key(assume) == OWN_KEY
    reads = [r for r in moto_proxy.requests if r.target.startswith("secretsmanager.")]
    assert sorted(r.target for r in reads) == [
        "secretsmanager.DescribeSecret",
        "secretsmanager.DescribeSecret",
        "secretsmanager.GetSecretValue",
        "secretsmanager.GetSecretValue",
    ]
    # Every call as the role, with the key its one AssumeRole gave (not the function's).
    assert {signing_key(r) for r in reads} == {signing_key(reads[0])}
    assert signing_key(reads[0]).startswith("ASIA")
    assert all(r.headers.get("X-Amz-Security-Token") for r in reads)


def test_the_same_secret_with_and_without_a_role_is_two_cache_entries(
    moto: MotoServer, moto_proxy: CountingProxy
) -> None:
    seed_values(moto)
    store = ParametersSecrets(
        {"own": Secret("prod/db"), "theirs": Secret("prod/db", role_arn=ROLE)},
        source=AwsSource(REGION, endpoint_url=moto_proxy.url),
    )
    store.load_sync()
    store.load_sync()  # cached: no more calls
    reads = [r for r in moto_proxy.requests if r.target.startswith("secretsmanager.")]
    assert sorted(signing_key(r) == OWN_KEY for r in reads) == [False, True]
    assert store.stats.size == 2


def test_roles_batch_their_own_values(moto: MotoServer, moto_proxy: CountingProxy) -> None:
    for index in range(4):
        put_parameter(moto, f"/b/p{index}", str(index))
    store = ParametersSecrets(
        {
            "a0": Parameter("/b/p0", role_arn=ROLE),
            "a1": Parameter("/b/p1", role_arn=ROLE),
            "b0": Parameter("/b/p2", role_arn=OTHER_ROLE),
            "b1": Parameter("/b/p3", role_arn=OTHER_ROLE),
            "own": Parameter("/b/p0"),
        },
        source=AwsSource(REGION, endpoint_url=moto_proxy.url),
    )
    assert dict(store.load_sync()) == {"a0": "0", "a1": "1", "b0": "2", "b1": "3", "own": "0"}
    batches = [r for r in moto_proxy.requests if r.target == "AmazonSSM.GetParameters"]
    assert len(batches) == 2  # one per role; the own value alone, as GetParameter
    assert len({signing_key(r) for r in batches}) == 2
    assert len(assume_role_requests(moto_proxy)) == 2


def test_a_refused_role_is_a_fetch_error_naming_the_role_and_aws_code(
    moto_auth: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A user that may read secrets but not assume any role.
    access_key, secret_key = create_iam_user(moto_auth, ["secretsmanager:GetSecretValue"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret_key)
    with CountingProxy(moto_auth.url) as proxy:
        store = ParametersSecrets(
            {"db": Secret("prod/refused", role_arn=ROLE)},
            source=AwsSource(REGION, endpoint_url=proxy.url),
        )
        with pytest.raises(LoadError) as failed:
            store.load_sync()
        assert len(assume_role_requests(proxy)) == 1  # refused, not retried
        assert not [r for r in proxy.requests if r.target]  # no value was asked for
    error = failed.value.failures["db"]
    assert error.code == "AccessDenied"
    assert not error.transient
    assert ROLE in str(error)
    assert "AccessDenied" in str(error)


def test_assumed_credentials_are_kept_until_five_minutes_before_expiry(
    moto: MotoServer, moto_proxy: CountingProxy
) -> None:
    now = [time.time()]
    roles = AssumedRoles(clock=lambda: now[0])

    async def get() -> Credentials:
        return await roles.get(
            ROLE,
            caller=Credentials(OWN_KEY, OWN_KEY),
            region=Region(REGION),
            endpoint=moto_proxy.url,
            give_up_at=time.monotonic() + 10,
        )

    import anyio

    first = anyio.run(get)
    assert anyio.run(get) == first
    # moto's sessions last an hour (AssumeRole's default DurationSeconds).
    now[0] += 3600 - REFRESH_BEFORE_EXPIRY_SECONDS - 30
    assert anyio.run(get) == first
    assert len(assume_role_requests(moto_proxy)) == 1
    now[0] += 60  # now within 5 minutes of the expiry
    second = anyio.run(get)
    assert len(assume_role_requests(moto_proxy)) == 2
    assert second.access_key != first.access_key


def test_a_caller_that_found_nothing_kept_takes_the_call_that_landed_meanwhile(
    moto: MotoServer, moto_proxy: CountingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race seen once in 50 threads: a caller finds no credentials kept, and before it
    asks for a call, another caller's AssumeRole lands and is kept. It must take those,
    not make a second AssumeRole."""
    roles = AssumedRoles()

    async def get() -> Credentials:
        return await roles.get(
            ROLE,
            caller=Credentials(OWN_KEY, OWN_KEY),
            region=Region(REGION),
            endpoint=moto_proxy.url,
            give_up_at=time.monotonic() + 10,
        )

    import anyio

    first = anyio.run(get)
    real_fresh = roles._fresh
    looks = iter([None])  # the first look (before the lock) finds nothing kept
    monkeypatch.setattr(roles, "_fresh", lambda role: next(looks, real_fresh(role)))
    assert anyio.run(get) == first
    assert len(assume_role_requests(moto_proxy)) == 1


def test_sts_endpoint_variable_is_honoured(
    moto: MotoServer, moto_proxy: CountingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_values(moto)
    with CountingProxy(moto.url) as sts_proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", sts_proxy.url)
        store = ParametersSecrets(
            {"key": Parameter("/other/key", role_arn=ROLE)},
            source=AwsSource(REGION, endpoint_url=moto_proxy.url),
        )
        assert store.load_sync().key == "their-key"
        assert len(assume_role_requests(sts_proxy)) == 1
    assert not assume_role_requests(moto_proxy)


# --- where a user meets it -----------------------------------------------------------


def test_through_the_middleware_under_mangum(moto: MotoServer, moto_proxy: CountingProxy) -> None:
    seed_values(moto)

    async def route(request: Request) -> JSONResponse:
        return JSONResponse({"key": request.state.key, "db": request.state.db["password"]})

    app = ParametersSecretsMiddleware(
        Starlette(routes=[Route("/", route)]),
        values={
            "key": Parameter("/other/key", role_arn=ROLE),
            "db": Secret("prod/db", transform="json", role_arn=ROLE),
        },
        source=AwsSource(REGION, endpoint_url=moto_proxy.url),
    )
    handler = Mangum(app, lifespan="off")
    for kind in ("api_gateway_v1", "http_api_v2", "alb", "function_url"):
        assert invoke(handler, kind, "/").json() == {"key": "their-key", "db": "pw-1"}
    assert len(assume_role_requests(moto_proxy)) == 1


def test_through_the_wsgi_middleware_under_apig_wsgi(
    moto: MotoServer, moto_proxy: CountingProxy
) -> None:
    seed_values(moto)
    store = ParametersSecrets(
        {"key": Parameter("/other/key", role_arn=ROLE)},
        source=AwsSource(REGION, endpoint_url=moto_proxy.url),
    )

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["parameters_secrets.values"]["key"].encode()]

    handler = make_lambda_handler(ParametersSecretsWSGIMiddleware(app, values=store))
    for kind in ("api_gateway_v1", "http_api_v2", "alb", "function_url"):
        assert invoke(handler, kind, "/").body == "their-key"
    assert len(assume_role_requests(moto_proxy)) == 1


def test_behind_the_extension_a_role_value_comes_from_aws_directly_at_init(
    moto: MotoServer, moto_proxy: CountingProxy
) -> None:
    """At INIT (a module-level ``load_sync()``), and once the extension serves: the
    extension cannot assume a role, so the value is read from AWS whatever it answers."""
    seed_values(moto)
    direct = AwsSource(REGION, endpoint_url=moto_proxy.url)
    # Port 9 (discard): nothing answers there, as during INIT; with the extension up the
    # role value would not be asked of it either.
    source = ExtensionSource(9, "token", fallback=direct)
    store = ParametersSecrets({"db": Secret("prod/db", role_arn=ROLE)}, source=source)
    assert json.loads(store.load_sync().db) == {"password": "pw-1"}
    assert len(assume_role_requests(moto_proxy)) == 1


def test_while_the_extension_serves_a_role_value_still_comes_from_aws(
    moto: MotoServer, moto_proxy: CountingProxy, extension: FakeExtension
) -> None:
    seed_values(moto)
    # The extension holds the function's own secret of that name: a different value.
    extension.put_secret("prod/db", string=json.dumps({"password": "own-account"}))
    source = ExtensionSource(
        extension.port, extension.token, fallback=AwsSource(REGION, endpoint_url=moto_proxy.url)
    )
    store = ParametersSecrets(
        {
            "own": Secret("prod/db", transform="json"),
            "theirs": Secret("prod/db", transform="json", role_arn=ROLE),
        },
        source=source,
    )
    values = store.load_sync()
    assert (values.own["password"], values.theirs["password"]) == ("own-account", "pw-1")
    assert extension.calls("secret", "prod/db") == 1  # only the own value
    assert len(assume_role_requests(moto_proxy)) == 1
