"""The public contract for sources: a custom source written and type-checked with public
names only, the protocol's ``checks_records``, and ExtensionSource's ``retry=``."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import pytest

from parameters_secrets import (
    ConfigurationError,
    FetchError,
    LoadError,
    Parameter,
    ParametersSecrets,
    Secret,
)
from parameters_secrets.sources import (
    ExtensionSource,
    Outcome,
    ParameterRequest,
    Record,
    RetryPolicy,
    SecretRequest,
    Source,
    ValueRequest,
)


class DictSource(Source):
    """A custom source over two dicts, built from public names only (mypy checks it)."""

    def __init__(self, parameters: dict[str, str], secrets: dict[str, str]) -> None:
        self.parameters = parameters
        self.secrets = secrets
        self.asked: list[ValueRequest] = []

    async def fetch(
        self, requests: Sequence[ValueRequest], deadline: float | None = None
    ) -> list[Outcome]:
        self.asked.extend(requests)
        return [self._one(request) for request in requests]

    def _one(self, request: ValueRequest) -> Outcome:
        record: Record
        if isinstance(request, ParameterRequest):
            if request.name not in self.parameters:
                return FetchError("no such parameter", code="ParameterNotFound")
            record = {"Name": request.name, "Value": self.parameters[request.name]}
            return record
        assert isinstance(request, SecretRequest)
        if request.secret_id not in self.secrets:
            return FetchError("no such secret", code="ResourceNotFoundException")
        return {"Name": request.secret_id, "SecretString": self.secrets[request.secret_id]}

    async def aclose(self) -> None:
        pass


def test_a_custom_source_of_public_names_serves_the_store() -> None:
    source = DictSource({"/p": "v"}, {"s": '{"user": "u"}'})
    store = ParametersSecrets(
        {"p": Parameter("/p"), "s": Secret("s", transform="json")}, source=source
    )
    values = store.load_sync()
    assert (values.p, values.s["user"]) == ("v", "u")
    assert source.asked == [ParameterRequest("/p"), SecretRequest("s")]


def test_a_subclass_inherits_checks_records_false_so_its_records_are_checked() -> None:
    source = DictSource({"/p": "v"}, {})
    assert source.checks_records is False

    async def about_another(
        requests: Sequence[ValueRequest], deadline: float | None = None
    ) -> list[Outcome]:
        return [{"Name": "/other", "Value": "v"} for _ in requests]

    source.fetch = about_another  # type: ignore[method-assign]
    store = ParametersSecrets({"p": Parameter("/p")}, source=source)
    with pytest.raises(LoadError) as failed:
        store.load_sync()
    assert failed.value.failures["p"].code == "MalformedResponse"


def test_a_source_that_declares_it_checks_its_records_is_trusted() -> None:
    class Trusted(DictSource):
        checks_records = True

        async def fetch(
            self, requests: Sequence[ValueRequest], deadline: float | None = None
        ) -> list[Outcome]:
            # A record the store's check would refuse (another name): trusted, it is used.
            return [{"Name": "/other", "Value": "v"} for _ in requests]

    store = ParametersSecrets({"p": Parameter("/p")}, source=Trusted({}, {}))
    assert store.load_sync().p == "v"


def test_an_object_without_checks_records_is_refused_with_what_it_lacks() -> None:
    class Bare:
        async def fetch(
            self, requests: Sequence[ValueRequest], deadline: float | None = None
        ) -> list[Outcome]:
            return []

        async def aclose(self) -> None:
            pass

    with pytest.raises(ConfigurationError, match="checks_records attribute"):
        ParametersSecrets({"p": Parameter("/p")}, source=Bare())  # type: ignore[arg-type]


@pytest.mark.parametrize(("retry", "attempts"), [(None, 1), (RetryPolicy(0.001, 0.01, 3), 3)])
def test_extension_source_retries_failures_as_its_retry_policy_says(
    retry: RetryPolicy | None, attempts: int
) -> None:
    calls: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500, json={"__type": "InternalServerError", "message": "down"})

    source = ExtensionSource(2773, "token", retry=retry, transport=httpx.MockTransport(answer))
    store = ParametersSecrets({"p": Parameter("/p")}, source=source)
    with pytest.raises(LoadError) as failed:
        store.load_sync()
    assert failed.value.failures["p"].code == "InternalServerError"
    # By default once: the extension has retried AWS itself.
    assert len(calls) == attempts
