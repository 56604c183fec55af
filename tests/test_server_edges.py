"""The local server at its edges (found by branch coverage): a custom source with a bug,
answering what is not a record, is answered with a 500 and logged, never with a
traceback or what it answered."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import httpx
import pytest

from parameters_secrets._server import ExtensionServer
from parameters_secrets._settings import Settings
from parameters_secrets.sources import Outcome, ValueRequest

pytestmark = pytest.mark.anyio
TOKEN = "server-edges-token"


class Broken:
    """A custom source with a bug: it answers a number where a record belongs (and says
    its records need no checking)."""

    checks_records = False

    async def fetch(
        self, requests: Sequence[ValueRequest], deadline: float | None = None
    ) -> Sequence[Outcome]:
        return [123456789 for _ in requests]  # type: ignore[misc]

    async def aclose(self) -> None:
        pass


async def test_a_source_answering_no_record_is_answered_500_and_logged_without_a_traceback_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = ExtensionServer(Broken(), token=TOKEN, settings=Settings())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=server),
        base_url="http://127.0.0.1:2773",
        headers={"X-Aws-Parameters-Secrets-Token": TOKEN},
    ) as client:
        with caplog.at_level(logging.ERROR, logger="parameters_secrets.server"):
            response = await client.get("/systemsmanager/parameters/get?name=%2Fapp%2Fkey")
    assert response.status_code == 500
    assert response.json() == {"__type": "InternalFailure", "message": "the server failed"}
    assert "123456789" not in response.text
    (record,) = [r for r in caplog.records if r.name == "parameters_secrets.server"]
    assert record.getMessage() == "unexpected error answering /systemsmanager/parameters/get"
