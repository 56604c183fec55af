"""FastAPI injection: ``api_key: Annotated[str, Value("api_key")]``."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request

from .exceptions import ParametersSecretsError

__all__ = ["Value"]


def Value(key: str) -> Any:  # noqa: N802 - named like FastAPI's Depends, Query
    """A FastAPI dependency giving the declared value ``key`` of the current request.

    Example:
        ``async def index(api_key: Annotated[str, Value("api_key")]): ...``
    """

    def dependency(request: Request) -> Any:
        try:
            return request.scope["state"][key]
        except KeyError:
            raise ParametersSecretsError(
                f"no value {key!r} on this request: "
                "is it declared in ParametersSecretsMiddleware's values?"
            ) from None

    dependency.__name__ = f"parameters_secrets_value_{key}"
    return Depends(dependency)
