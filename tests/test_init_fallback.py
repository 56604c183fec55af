"""Values during Lambda's INIT phase beside the extension (issue 13, part 2): while the
extension is not serving ("not ready", or the connection refused), a fetch asks AWS
directly; once it serves, fetches go through it again.

The extension is the fake on 127.0.0.1; AWS is moto's server behind a counting proxy. The
two hold different values, so each answer says where it came from.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from parameters_secrets import LoadError, Parameter, ParametersSecrets, Secret
from parameters_secrets.sources import ExtensionSource
from tests import faults
from tests.conftest import TOKEN
from tests.extension_server import FakeExtension
from tests.moto_server import CountingProxy, MotoServer, create_secret, put_parameter
from tests.processes import clean_environment

ROOT = Path(__file__).resolve().parent.parent
VALUES: dict[str, Parameter | Secret] = {
    "api_key": Parameter("/app/api-key"),
    "flags": Parameter("/app/flags"),
    "db": Secret("prod/db"),
}
FROM_AWS = {"api_key": "key-from-aws", "flags": "flags-from-aws", "db": "db-from-aws"}
FROM_EXTENSION = {"api_key": "key-from-ext", "flags": "flags-from-ext", "db": "db-from-ext"}


@pytest.fixture
def aws(
    moto: MotoServer, moto_proxy: CountingProxy, monkeypatch: pytest.MonkeyPatch
) -> CountingProxy:
    """moto with the values, reached as a function reaches AWS: the environment's
    credentials and region (Lambda sets them), here with the endpoint pointed at moto."""
    put_parameter(moto, "/app/api-key", FROM_AWS["api_key"], type="SecureString")
    put_parameter(moto, "/app/flags", FROM_AWS["flags"])
    create_secret(moto, "prod/db", string=FROM_AWS["db"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_proxy.url)
    return moto_proxy


@pytest.fixture
def starting(extension: FakeExtension) -> FakeExtension:
    """The extension with its own values, answering "not ready" as during INIT."""
    extension.put_parameter("/app/api-key", FROM_EXTENSION["api_key"], type="SecureString")
    extension.put_parameter("/app/flags", FROM_EXTENSION["flags"])
    extension.put_secret("prod/db", string=FROM_EXTENSION["db"])
    extension.fail(faults.NOT_READY)
    return extension


def extension_calls(extension: FakeExtension) -> int:
    return extension.total_calls


def test_a_load_while_the_extension_is_not_ready_comes_from_aws_without_waiting(
    starting: FakeExtension, aws: CountingProxy, caplog: pytest.LogCaptureFixture
) -> None:
    store = ParametersSecrets(VALUES, source=ExtensionSource(starting.port, TOKEN, fallback="aws"))
    began = time.monotonic()
    with caplog.at_level(logging.INFO, logger="parameters_secrets"):
        values = store.load_sync()
    elapsed = time.monotonic() - began
    assert dict(values) == FROM_AWS
    # The extension was asked once per value and not again: its 1 s of retries not waited.
    assert extension_calls(starting) == 3
    assert elapsed < 0.9
    # One call per service: the two parameters batched, the one secret alone.
    assert aws.counts == {"AmazonSSM.GetParameters": 1, "secretsmanager.GetSecretValue": 1}
    said = [r for r in caplog.records if "values come from AWS directly" in r.getMessage()]
    assert [r.levelname for r in said] == ["INFO"]
    store.refresh_sync()  # still not ready: AWS again, and the log does not repeat
    assert len([r for r in caplog.records if "from AWS directly" in r.getMessage()]) == 1


def test_once_the_extension_serves_fetches_go_through_it_again(
    starting: FakeExtension, aws: CountingProxy
) -> None:
    store = ParametersSecrets(VALUES, source=ExtensionSource(starting.port, TOKEN, fallback="aws"))
    assert dict(store.load_sync()) == FROM_AWS
    starting.clear_faults()  # INIT is over: the extension serves
    aws.reset()
    assert dict(store.refresh_sync()) == FROM_EXTENSION
    assert aws.total == 0
    assert extension_calls(starting) == 6


def test_a_refused_connection_falls_back_too(starting: FakeExtension, aws: CountingProxy) -> None:
    starting.stop()  # nothing listens yet: the connection is refused
    store = ParametersSecrets(VALUES, source=ExtensionSource(starting.port, TOKEN, fallback="aws"))
    assert dict(store.load_sync()) == FROM_AWS


def test_without_a_fallback_the_extension_is_retried_then_not_ready(
    starting: FakeExtension, aws: CountingProxy
) -> None:
    store = ParametersSecrets(VALUES, source=ExtensionSource(starting.port, TOKEN))
    with pytest.raises(LoadError) as failed:
        store.load_sync()
    assert {e.code for e in failed.value.failures.values()} == {"ExtensionNotReady"}
    assert extension_calls(starting) > 3  # retried for about a second
    assert aws.total == 0


@pytest.mark.parametrize(("fallback", "expected"), [(None, "from-aws"), ("none", "not-ready")])
def test_the_default_source_on_lambda_falls_back_unless_told_not_to(
    starting: FakeExtension,
    aws: CountingProxy,
    monkeypatch: pytest.MonkeyPatch,
    fallback: str | None,
    expected: str,
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "demo")
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    monkeypatch.setenv("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", str(starting.port))
    if fallback is not None:
        monkeypatch.setenv("PARAMETERS_SECRETS_EXTENSION_FALLBACK", fallback)
    store = ParametersSecrets(VALUES)
    assert isinstance(store.source, ExtensionSource)
    if expected == "from-aws":
        assert store.source.fallback == "aws"
        assert dict(store.load_sync()) == FROM_AWS
    else:
        assert store.source.fallback is None
        with pytest.raises(LoadError) as failed:
            store.load_sync()
        assert {e.code for e in failed.value.failures.values()} == {"ExtensionNotReady"}


def test_off_lambda_the_extension_source_never_falls_back_by_itself(
    starting: FakeExtension, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARAMETERS_SECRETS_SOURCE", "extension")
    monkeypatch.setenv("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", str(starting.port))
    store = ParametersSecrets(VALUES)
    assert isinstance(store.source, ExtensionSource)
    assert store.source.fallback is None  # a local server not started must not mean AWS


def last_json_line(script: str, environ: dict[str, str]) -> Any:
    """What ``script`` prints last, as JSON, run in a fresh interpreter with ``environ``."""
    completed = subprocess.run(
        [sys.executable, "-c", script],
        env=clean_environment(environ),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(completed.stdout.splitlines()[-1])


def test_the_aws_code_is_imported_only_when_the_fallback_is_first_used(
    starting: FakeExtension, aws: CountingProxy
) -> None:
    """In a fresh interpreter, as on Lambda: building the default store and loading while
    the extension serves imports no AWS-direct code; loading while it is not ready does."""
    script = """
import json, sys
from parameters_secrets import ParametersSecrets, Parameter
AWS = ("parameters_secrets._sources.aws", "parameters_secrets._sigv4",
       "parameters_secrets._credentials")
def loaded():
    return sorted(m for m in AWS if m in sys.modules)
store = ParametersSecrets({"flags": Parameter("/app/flags")})
report = {"built": loaded()}
report["served"] = [store.load_sync()["flags"], loaded()]
print(json.dumps(report))
"""
    starting.clear_faults()
    environ = {
        "AWS_LAMBDA_FUNCTION_NAME": "demo",
        "AWS_SESSION_TOKEN": TOKEN,
        "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": str(starting.port),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "middleware"), str(ROOT)]),
    }
    report = last_json_line(script, environ)
    assert report == {"built": [], "served": [FROM_EXTENSION["flags"], []]}
    starting.fail(faults.NOT_READY)
    script_not_ready = script.replace('report["served"]', 'report["fallback"]')
    aws_environ = {
        **environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": aws.url,
    }
    report = last_json_line(script_not_ready, aws_environ)
    modules = sorted(
        [
            "parameters_secrets._sources.aws",
            "parameters_secrets._sigv4",
            "parameters_secrets._credentials",
        ]
    )
    assert report == {"built": [], "fallback": [FROM_AWS["flags"], modules]}
