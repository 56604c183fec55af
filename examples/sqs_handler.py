"""A plain Lambda handler for SQS events, beside the FastAPI app, reading the same values.

It imports the FastAPI example's store: in one process (the same function handling both
kinds of events, a test, a script), both are served from one cache. No event loop runs
here, so it reads with ``config.load_sync()``, which never calls ``asyncio.run`` (that
would break a Mangum handler in the same process).

Locally::

    PARAMETERS_SECRETS_SOURCE=file:examples/local-values.json python -m examples.sqs_handler
"""

from __future__ import annotations

import json
from typing import Any

from examples.fastapi_app import config


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Process each message with the database settings; report the ones that failed."""
    db = config.load_sync().db  # from the cache after the first call
    failures = []
    for record in event.get("Records", []):
        try:
            order = json.loads(record["body"])
            # A real handler would connect with db["host"], db["username"], db["password"].
            print(f"order {order['id']} for {db['username']}@{db['host']}")
        except (KeyError, ValueError):
            failures.append({"itemIdentifier": record.get("messageId", "")})
    return {"batchItemFailures": failures}


if __name__ == "__main__":
    messages = [{"messageId": "m1", "body": '{"id": 1}'}, {"messageId": "m2", "body": "oops"}]
    print(handler({"Records": messages}, None))
