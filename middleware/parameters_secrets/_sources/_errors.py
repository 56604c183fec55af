"""Reading AWS error answers (JSON, XML or text) the same way for every source."""

from __future__ import annotations

import re
from typing import Any

from .._json import loads

THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RateExceeded",
        "ProvisionedThroughputExceededException",
    }
)
_XML_CODE = re.compile(r"<Code>([^<]{1,100})</Code>")
_XML_MESSAGE = re.compile(r"<Message>([^<]{0,300})</Message>")
_CODE_IN_TEXT = re.compile(r"\b([A-Z][A-Za-z]+(?:Exception|NotFound|Error|Fault))\b")


def error_code(status: int, text: str, error_type: str | None = None) -> tuple[str, str]:
    """The AWS error code and message in an error answer.

    The ``X-Amzn-Errortype`` header (``error_type``, as AWS Cloud Extensions answer), JSON
    (``{"__type": "...#Code", "message": ...}``, as the JSON APIs and the extension
    answer), XML (``<Code>``, as authentication failures come back), or a code found in
    plain text; else one derived from the status.
    """
    text = text[:4000]
    return (
        _json_error(text, error_type)
        or _text_error(text, error_type)
        or _status_error(status, text)
    )


def _json_object(text: str) -> dict[str, Any] | None:
    """``text`` as a JSON object, if it is one."""
    try:
        body = loads(text)  # a hostile error answer (deeply nested) is only text
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _json_error(text: str, error_type: str | None) -> tuple[str, str] | None:
    body = _json_object(text)
    if body is None:
        return None
    code = error_type or _first_given(body, "__type", "code", "Code")
    if not (isinstance(code, str) and code):
        return None
    message = _first_given(body, "message", "Message") or ""
    # "com.amazonaws.ssm#ParameterNotFound" -> "ParameterNotFound";
    # "ThrottlingException:http://..." -> "ThrottlingException"
    return code.rsplit("#", 1)[-1].split(":", 1)[0], str(message)[:300]


def _first_given(body: dict[str, Any], *fields: str) -> Any:
    """The value of the first of ``fields`` that ``body`` gives (not empty); else None."""
    return next((body[field] for field in fields if body.get(field)), None)


def _text_error(text: str, error_type: str | None) -> tuple[str, str] | None:
    if error_type:
        return error_type.split(":", 1)[0], text.strip()[:300]
    found = _XML_CODE.search(text)
    if found:
        message = _XML_MESSAGE.search(text)
        return found.group(1).strip(), message.group(1).strip() if message else ""
    found = _CODE_IN_TEXT.search(text)
    if found:
        return found.group(1), text.strip()[:300]
    return None


def _status_error(status: int, text: str) -> tuple[str, str]:
    if status == 401:
        return "Unauthorized", ""
    return ("InternalServerError" if status >= 500 else "HTTPError"), text.strip()[:300]


def is_transient(status: int | None, code: str) -> bool:
    """Whether trying again may help: 5xx, 429 and throttling."""
    return (status is not None and (status >= 500 or status == 429)) or code in THROTTLING_CODES
