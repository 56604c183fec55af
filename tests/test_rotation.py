"""``Secret(..., follow_rotation=True)`` against moto's server on 127.0.0.1, through a
counting, failing proxy: the value expires at its ``NextRotationDate``, is then revalidated
with ``DescribeSecret`` at most every 30 s (of the store's injected clock), and is fetched
again only when its ``AWSCURRENT`` version changed.

moto sets ``NextRotationDate`` from the real time when ``RotateSecret`` is given rotation
rules (a day ahead at least); the store's wall clock is injected, so each test starts it
where it needs relative to that date. A rotation completing is ``PutSecretValue``: a new
version labelled ``AWSCURRENT``, as a rotation function's last step leaves it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from apig_wsgi import make_lambda_handler
from mangum import Mangum
from starlette.requests import Request
from starlette.responses import JSONResponse

from parameters_secrets import (
    ConfigurationError,
    LoadError,
    ParametersSecrets,
    ParametersSecretsMiddleware,
    ParametersSecretsWSGIMiddleware,
    Secret,
    Settings,
)
from parameters_secrets._rotation import REVALIDATE_SECONDS
from parameters_secrets.sources import (
    AwsSource,
    CloudExtensionsSource,
    ExtensionSource,
    RetryPolicy,
    StaticSource,
)
from tests import faults
from tests.cloud_extensions_fake import FakeCloudExtensions
from tests.conftest import TOKEN, FakeClock
from tests.extension_server import FakeExtension
from tests.lambda_events import invoke
from tests.moto_server import (
    REGION,
    CountingProxy,
    MotoServer,
    create_iam_user,
    create_secret,
    put_secret_value,
)

pytestmark = pytest.mark.anyio
GET = "secretsmanager.GetSecretValue"
DESCRIBE = "secretsmanager.DescribeSecret"
TTL = 300


class Clocks:
    """The store's two clocks, moved together: monotonic (TTLs) and wall (dates)."""

    def __init__(self, wall: float) -> None:
        self.monotonic = FakeClock()
        self.wall = FakeClock(wall)

    def advance(self, seconds: float) -> None:
        self.monotonic.advance(seconds)
        self.wall.advance(seconds)


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", REGION)


def rotating_secret(moto: MotoServer, name: str, value: str) -> float:
    """A secret with rotation on (every day); returns its NextRotationDate (epoch)."""
    create_secret(moto, name, string=value)
    client = moto.client("secretsmanager")
    # Without a rotation function moto labels a new version AWSCURRENT at once; not
    # rotating immediately, that version holds the value as it was.
    client.rotate_secret(
        SecretId=name, RotationRules={"AutomaticallyAfterDays": 1}, RotateImmediately=False
    )
    return float(client.describe_secret(SecretId=name)["NextRotationDate"].timestamp())


def aws(proxy: CountingProxy, **options: Any) -> AwsSource:
    # One try per call: a test counts the calls a revalidation makes.
    return AwsSource(REGION, endpoint_url=proxy.url, retry=RetryPolicy(max_attempts=1), **options)


def store_on(
    source: Any, clocks: Clocks, values: dict[str, Secret] | None = None
) -> ParametersSecrets:
    return ParametersSecrets(
        values if values is not None else {"db": Secret("db", follow_rotation=True)},
        source=source,
        settings=Settings(secret_ttl=TTL),
        clock=clocks.monotonic,
        wall_clock=clocks.wall,
    )


@contextlib.asynccontextmanager
async def opened(store: ParametersSecrets) -> AsyncIterator[ParametersSecrets]:
    try:
        yield store
    finally:
        await store.aclose()


def calls(proxy: CountingProxy) -> tuple[int, int]:
    """(GetSecretValue, DescribeSecret) calls so far."""
    return proxy.calls(GET), proxy.calls(DESCRIBE)


# -- declarations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pinned", [{"version_id": "v-1"}, {"version_stage": "AWSPREVIOUS"}, {"version_stage": "X"}]
)
def test_a_pinned_version_cannot_follow_rotation(pinned: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError, match="pinned version never rotates"):
        Secret("db", follow_rotation=True, **pinned)  # type: ignore[arg-type]


def test_follow_rotation_is_part_of_the_request_identity() -> None:
    assert Secret("db", version_stage="AWSCURRENT", follow_rotation=True).request.follow_rotation
    assert Secret("db", follow_rotation=True).request != Secret("db").request
    with pytest.raises(ConfigurationError, match="follow_rotation must be True or False"):
        Secret("db", follow_rotation="yes")  # type: ignore[arg-type]


# -- calls per API over (injected) time ---------------------------------------------------


async def test_the_first_fetch_describes_the_secret_once_with_its_value(
    moto: MotoServer, moto_proxy: CountingProxy
) -> None:
    date = rotating_secret(moto, "db", "v1")
    async with opened(store_on(aws(moto_proxy), Clocks(date - 1800))) as store:
        assert (await store.load())["db"] == "v1"
    assert calls(moto_proxy) == (1, 1)


async def test_before_the_rotation_date_only_the_ttl_refetches_and_nothing_is_described(
    moto: MotoServer, moto_proxy: CountingProxy
) -> None:
    date = rotating_secret(moto, "db", "v1")
    clocks = Clocks(date - 1800)
    async with opened(store_on(aws(moto_proxy), clocks)) as store:
        for _ in range(29):  # a read a minute, up to 60 s before the date
            assert (await store.load())["db"] == "v1"
            clocks.advance(60)
    # Fetched at 0 s, then at each TTL's end: 300, 600, 900, 1200, 1500 s.
    assert calls(moto_proxy) == (6, 1)


async def test_the_value_expires_at_its_rotation_date_though_its_ttl_has_not(
    moto: MotoServer, moto_proxy: CountingProxy
) -> None:
    date = rotating_secret(moto, "db", "v1")
    clocks = Clocks(date - 100)
    async with opened(store_on(aws(moto_proxy), clocks)) as store:
        await store.load()
        clocks.advance(99)
        assert store.cached() is not None  # the warm snapshot, before the date
        clocks.advance(2)
        assert store.cached() is None  # past the date: the snapshot has expired too
        assert (await store.load())["db"] == "v1"
    # Revalidated: described again; the version is unchanged, so no GetSecretValue.
    assert calls(moto_proxy) == (1, 2)


async def test_past_the_date_it_is_described_at_most_every_30_s_and_never_fetched_again(
    moto: MotoServer, moto_proxy: CountingProxy
) -> None:
    date = rotating_secret(moto, "db", "v1")
    clocks = Clocks(date + 1)
    async with opened(store_on(aws(moto_proxy), clocks)) as store:
        for _ in range(300):  # a read a second for five minutes
            assert (await store.load())["db"] == "v1"
            clocks.advance(1)
    # Described with the first fetch (at 0 s), then every 30 s: 30, 60, ..., 270 s.
    assert calls(moto_proxy) == (1, 1 + int(300 // REVALIDATE_SECONDS) - 1)


async def test_a_rotation_is_served_on_the_first_read_after_the_next_revalidation(
    moto: MotoServer, moto_proxy: CountingProxy
) -> None:
    date = rotating_secret(moto, "db", "v1")
    clocks = Clocks(date + 1)
    async with opened(store_on(aws(moto_proxy), clocks)) as store:
        await store.load()  # described at 0 s: expires at 30 s
        clocks.advance(10)
        put_secret_value(moto, "db", string="v2")  # the rotation completes at 10 s
        clocks.advance(19)
        assert (await store.load())["db"] == "v1"  # 29 s: not revalidated yet
        moto_proxy.reset()
        clocks.advance(1)
        assert (await store.load())["db"] == "v2"  # 30 s: revalidated, the new version
        assert calls(moto_proxy) == (1, 1)
        for _ in range(90):  # and while the version stays, no GetSecretValue
            clocks.advance(1)
            assert (await store.load())["db"] == "v2"
    assert calls(moto_proxy) == (1, 4)


async def test_a_transient_describe_failure_serves_the_current_value_and_waits_the_interval(
    moto: MotoServer, moto_proxy: CountingProxy, caplog: pytest.LogCaptureFixture
) -> None:
    date = rotating_secret(moto, "db", "v1")
    clocks = Clocks(date + 1)
    async with opened(store_on(aws(moto_proxy), clocks)) as store:
        await store.load()
        moto_proxy.fail(faults.server_error(), match=DESCRIBE)  # 500 InternalFailure until cleared
        clocks.advance(REVALIDATE_SECONDS)
        with caplog.at_level(logging.WARNING, logger="parameters_secrets"):
            assert (await store.load())["db"] == "v1"
        assert list(filter(None, moto_proxy.faults_met())) == [faults.server_error()]
        for _ in range(int(REVALIDATE_SECONDS) - 1):  # not asked again within the interval
            clocks.advance(1)
            assert (await store.load())["db"] == "v1"
        assert calls(moto_proxy) == (1, 2)
        assert "describing secret db following its rotation failed (InternalFailure)" in caplog.text
        assert "v1" not in caplog.text
        moto_proxy.clear_faults()
        put_secret_value(moto, "db", string="v2")
        clocks.advance(1)
        assert (await store.load())["db"] == "v2"  # asked again after the interval
    assert calls(moto_proxy) == (2, 3)


async def test_a_secret_without_rotation_is_cached_with_its_ttl_alone(
    moto: MotoServer, moto_proxy: CountingProxy
) -> None:
    create_secret(moto, "db", string="v1")  # rotation never turned on
    clocks = Clocks(time.time())
    async with opened(store_on(aws(moto_proxy), clocks)) as store:
        for _ in range(15):  # a read a minute for a quarter of an hour
            assert (await store.load())["db"] == "v1"
            clocks.advance(60)
    assert calls(moto_proxy) == (3, 1)  # at 0, 300 and 600 s; described once


async def test_a_role_without_describe_secret_fails_the_first_load_naming_it(
    moto_auth: MotoServer,
) -> None:
    create_secret(moto_auth, "db-no-describe", string="v1")
    access_key, secret_key = create_iam_user(moto_auth, ["secretsmanager:GetSecretValue"])
    from parameters_secrets.sources import Credentials

    source = AwsSource(
        REGION, endpoint_url=moto_auth.url, credentials=Credentials(access_key, secret_key)
    )
    values = {"db": Secret("db-no-describe", follow_rotation=True)}
    async with opened(store_on(source, Clocks(time.time()), values)) as store:
        with pytest.raises(LoadError) as raised:
            await store.load()
    error = raised.value.failures["db"]
    assert error.code in ("AccessDenied", "AccessDeniedException")  # moto's, AWS's
    assert "DescribeSecret" in str(error)


async def test_the_same_secret_followed_and_not_is_two_cache_entries(
    moto: MotoServer, moto_proxy: CountingProxy
) -> None:
    date = rotating_secret(moto, "db", "v1")
    values = {"plain": Secret("db"), "following": Secret("db", follow_rotation=True)}
    async with opened(store_on(aws(moto_proxy), Clocks(date - 1800), values)) as store:
        assert dict(await store.load()) == {"plain": "v1", "following": "v1"}
        assert store.stats.size == 2
    assert calls(moto_proxy)[1] == 1  # only the following one is described


async def test_after_a_snapstart_restore_the_secret_is_fetched_and_described_again(
    moto: MotoServer, moto_proxy: CountingProxy
) -> None:
    date = rotating_secret(moto, "db", "v1")
    clocks = Clocks(date + 1)
    async with opened(store_on(aws(moto_proxy), clocks)) as store:
        await store.load()
        moto_proxy.fail(faults.server_error(), match=DESCRIBE)
        store.drop_after_restore()
        # Nothing from before the snapshot is reused: the value is fetched anew (and
        # served, though its description failed: it is fresh), not revalidated.
        assert (await store.load())["db"] == "v1"
    assert calls(moto_proxy) == (2, 2)


# -- where users meet it ------------------------------------------------------------------


def test_through_the_middleware_under_mangum_a_rotation_reaches_the_app(
    moto: MotoServer, moto_proxy: CountingProxy
) -> None:
    date = rotating_secret(moto, "db", "v1")
    clocks = Clocks(date + 1)
    store = store_on(aws(moto_proxy), clocks)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        response = JSONResponse({"db": Request(scope).state.db})
        await response(scope, receive, send)

    handler = Mangum(ParametersSecretsMiddleware(app, values=store), lifespan="off")
    assert invoke(handler, "http_api_v2", "/").json() == {"db": "v1"}
    put_secret_value(moto, "db", string="v2")
    clocks.advance(REVALIDATE_SECONDS - 1)
    assert invoke(handler, "api_gateway_v1", "/").json() == {"db": "v1"}
    clocks.advance(1)
    assert invoke(handler, "function_url", "/").json() == {"db": "v2"}
    assert calls(moto_proxy) == (2, 2)


def test_through_the_wsgi_middleware_under_apig_wsgi_a_rotation_reaches_the_app(
    moto: MotoServer, moto_proxy: CountingProxy
) -> None:
    date = rotating_secret(moto, "db", "v1")
    clocks = Clocks(date + 1)
    store = store_on(aws(moto_proxy), clocks)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["parameters_secrets.values"]["db"].encode()]

    handler = make_lambda_handler(ParametersSecretsWSGIMiddleware(app, values=store))
    assert invoke(handler, "http_api_v2", "/").body == "v1"
    put_secret_value(moto, "db", string="v2")
    clocks.advance(REVALIDATE_SECONDS - 1)
    assert invoke(handler, "api_gateway_v1", "/").body == "v1"
    clocks.advance(1)
    assert invoke(handler, "alb", "/").body == "v2"
    assert calls(moto_proxy) == (2, 2)


@pytest.fixture
def extension() -> Iterator[FakeExtension]:
    with FakeExtension(token=TOKEN) as server:
        server.put_secret("other", string="from the extension")
        yield server


async def test_behind_the_extension_a_following_secret_is_read_from_aws_directly(
    moto: MotoServer, moto_proxy: CountingProxy, extension: FakeExtension
) -> None:
    date = rotating_secret(moto, "db", "v1")
    clocks = Clocks(date + 1)
    source = ExtensionSource(extension.port, TOKEN, fallback=aws(moto_proxy))
    values = {"db": Secret("db", follow_rotation=True), "other": Secret("other")}
    async with opened(store_on(source, clocks, values)) as store:
        assert dict(await store.load()) == {"db": "v1", "other": "from the extension"}
        put_secret_value(moto, "db", string="v2")
        clocks.advance(REVALIDATE_SECONDS)
        assert (await store.get("db")) == "v2"
    assert extension.calls("secret", "db") == 0
    assert extension.calls("secret", "other") == 1
    assert calls(moto_proxy) == (2, 2)


async def test_behind_cloud_extensions_a_following_secret_is_read_from_aws_directly(
    moto: MotoServer, moto_proxy: CountingProxy
) -> None:
    date = rotating_secret(moto, "db", "v1")
    runtime = FakeCloudExtensions(credentials=("testing", "testing", None), token=TOKEN)
    runtime.secrets["other"] = "from the runtime"
    source = CloudExtensionsSource(
        token=TOKEN, transport=runtime.transport(), fallback=aws(moto_proxy)
    )
    values = {"db": Secret("db", follow_rotation=True), "other": Secret("other")}
    async with opened(store_on(source, Clocks(date + 1), values)) as store:
        assert dict(await store.load()) == {"db": "v1", "other": "from the runtime"}
    assert runtime.calls == {"secretsmanager/get": 1}  # "other" only
    assert calls(moto_proxy) == (1, 1)


async def test_a_source_that_cannot_describe_caches_with_the_ttl_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = StaticSource(secrets={"db": "v1"})
    clocks = Clocks(time.time())
    with caplog.at_level(logging.INFO, logger="parameters_secrets"):
        store = store_on(source, clocks)
    assert "cannot call DescribeSecret: 'db' follow no rotation" in caplog.text
    async with opened(store):
        assert (await store.load())["db"] == "v1"
        clocks.advance(TTL - 1)
        assert store.cached() is not None
