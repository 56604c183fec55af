"""SSM and Secrets Manager called directly (planned: not implemented yet)."""

from __future__ import annotations

from collections.abc import Sequence

from .._declarations import ValueRequest
from .._settings import Settings
from ..exceptions import ConfigurationError
from . import Outcome


class AwsSource:
    """SSM and Secrets Manager over their JSON APIs, SigV4-signed. Not implemented yet."""

    def __init__(
        self,
        region: str | None = None,
        endpoint_url: str | None = None,
        *,
        settings: Settings | None = None,
    ) -> None:
        raise ConfigurationError(
            "AwsSource is not implemented yet. In Lambda, attach the Parameters and Secrets "
            "extension layer (ExtensionSource); elsewhere set PARAMETERS_SECRETS_SOURCE=file:PATH "
            "or pass source=StaticSource(...)."
        )

    async def fetch(
        self, requests: Sequence[ValueRequest], deadline: float | None = None
    ) -> list[Outcome]:
        raise NotImplementedError  # pragma: no cover - cannot be constructed

    async def aclose(self) -> None:
        """Nothing to release."""
