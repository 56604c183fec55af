"""The README's code blocks run as a reader would paste them.

The rule, for whoever adds a block to README.md:

- Every ```python block runs, unless the line just before its opening fence is
  ``<!-- not run: REASON -->`` (a signature, "before" code, an excerpt). The reason is
  required.
- Each block runs alone, as a script (``__name__ == "__main__"``), in a fresh Python
  subprocess, in an empty working directory, with
  ``PARAMETERS_SECRETS_SOURCE=file:examples/local-values.json`` and no AWS, Lambda or
  extension variable. So a block needs its own imports and declarations, and the values
  file must hold every name the block reads: add them there.
- A block that defines ``handler`` as a Mangum handler is then invoked once, with an API
  Gateway HTTP API ``GET /`` event, and must answer 200. Any other ``handler`` (an SQS
  handler, say) is only defined: a block that wants it run calls it itself.
- Every ```json block parses; a values file (a ```json block with ``"parameters"`` or
  ``"secrets"``) loads with ``StaticSource.from_file`` and serves every name in it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mangum import Mangum
from starlette.types import Receive, Scope, Send

import parameters_secrets
from parameters_secrets import (
    Parameter,
    ParametersSecretsMiddleware,
    Secret,
    StaticSource,
    current_values,
)
from tests.lambda_events import invoke, make_event
from tests.processes import clean_environment

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
VALUES_FILE = ROOT / "examples" / "local-values.json"
NOT_RUN = re.compile(r"<!--\s*not run:(?P<reason>.*?)-->")
REPORT_PREFIX = "readme-block-report: "

# Runs one block as __main__, then invokes its handler if it is Mangum's.
RUNNER = f"""
import json, runpy, sys
namespace = runpy.run_path(sys.argv[1], run_name="__main__")
handler = namespace.get("handler")
report = {{"handler": None if handler is None else type(handler).__name__}}
from mangum import Mangum
from starlette.types import Receive, Scope, Send
if isinstance(handler, Mangum):
    from tests.lambda_events import LambdaContext
    report["response"] = handler(json.loads(sys.argv[2]), LambdaContext())
print({REPORT_PREFIX!r} + json.dumps(report))
"""


@dataclass(frozen=True)
class Block:
    language: str
    code: str
    line: int  # of the opening fence, 1-based
    heading: str
    skip_reason: str | None

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.heading.lower()).strip("-")
        return f"{slug}-line{self.line}"


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block, with the heading above it and its not-run marker, if any."""
    blocks: list[Block] = []
    lines = text.splitlines()
    heading = "top"
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        fence = re.fullmatch(r"```(\w*)\s*", line)
        if fence is None:
            index += 1
            continue
        end = lines.index("```", index + 1)
        marker = NOT_RUN.search(lines[index - 1]) if index else None
        if marker is not None and not marker.group("reason").strip():
            raise ValueError(f"README.md:{index}: a not-run marker needs a reason")
        blocks.append(
            Block(
                language=fence.group(1),
                code="\n".join(lines[index + 1 : end]) + "\n",
                line=index + 1,
                heading=heading,
                skip_reason=marker.group("reason").strip() if marker else None,
            )
        )
        index = end + 1
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))
PYTHON_BLOCKS = [block for block in BLOCKS if block.language == "python"]
JSON_BLOCKS = [block for block in BLOCKS if block.language == "json"]


def run_block(block: Block, tmp_path: Path) -> dict[str, Any]:
    script = tmp_path / f"readme_{block.id}.py"
    script.write_text(block.code, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, str(script), json.dumps(make_event("http_api_v2", "/"))],
        cwd=tmp_path,
        env=clean_environment(
            {"PARAMETERS_SECRETS_SOURCE": f"file:{VALUES_FILE}", "PYTHONPATH": str(ROOT)}
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"README.md:{block.line}\n{result.stdout}{result.stderr}"
    reports = [line for line in result.stdout.splitlines() if line.startswith(REPORT_PREFIX)]
    assert len(reports) == 1, result.stdout
    report: dict[str, Any] = json.loads(reports[0].removeprefix(REPORT_PREFIX))
    return report


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[block.id for block in PYTHON_BLOCKS])
def test_readme_python_block_runs(block: Block, tmp_path: Path) -> None:
    if block.skip_reason is not None:
        pytest.skip(f"README.md:{block.line}: not run: {block.skip_reason}")
    report = run_block(block, tmp_path)
    if report["handler"] == "Mangum":
        response = report["response"]
        assert response["statusCode"] == 200, (block.line, response)


def test_readme_framework_examples_run_and_answer_through_mangum(tmp_path: Path) -> None:
    """The Usage section's three apps are run (not marked away) and are Mangum handlers."""
    by_heading = {block.heading: block for block in PYTHON_BLOCKS}
    expected = {
        "FastAPI": {"user": "app", "beta": True},
        "Starlette": {"user": "app"},
        "Flask (or any framework)": {"user": "app"},
    }
    for heading, body in expected.items():
        block = by_heading[heading]
        assert block.skip_reason is None, heading
        report = run_block(block, tmp_path)
        assert report["handler"] == "Mangum", heading
        assert json.loads(report["response"]["body"]) == body, heading


def test_every_skipped_block_says_why() -> None:
    skipped = [block for block in PYTHON_BLOCKS if block.skip_reason is not None]
    assert all(block.skip_reason for block in skipped)
    assert len(skipped) < len(PYTHON_BLOCKS)


def test_a_marker_without_a_reason_is_refused() -> None:
    with pytest.raises(ValueError, match="needs a reason"):
        readme_blocks("text\n<!-- not run: -->\n```python\nx = 1\n```\n")


@pytest.mark.parametrize("block", JSON_BLOCKS, ids=[block.id for block in JSON_BLOCKS])
def test_readme_json_block_parses(block: Block) -> None:
    json.loads(block.code)


def test_readme_values_file_block_loads_and_serves_every_name(tmp_path: Path) -> None:
    (block,) = [b for b in JSON_BLOCKS if {"parameters", "secrets"} & json.loads(b.code).keys()]
    path = tmp_path / "values.json"
    path.write_text(block.code, encoding="utf-8")
    data = json.loads(block.code)
    declarations: dict[str, Parameter | Secret] = {}
    for number, name in enumerate(data.get("parameters", {})):
        declarations[f"parameter_{number}"] = Parameter(name)
    for number, secret_id in enumerate(data.get("secrets", {})):
        declarations[f"secret_{number}"] = Secret(secret_id)

    async def loaded_keys(scope: Scope, receive: Receive, send: Send) -> None:
        body = json.dumps(sorted(current_values())).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    app = ParametersSecretsMiddleware(
        loaded_keys, values=declarations, source=StaticSource.from_file(path)
    )
    response = invoke(Mangum(app, lifespan="off"), "http_api_v2", "/")
    assert (response.status, response.json()) == (200, sorted(declarations))


def test_every_nox_session_the_readme_names_exists() -> None:
    text = README.read_text(encoding="utf-8")
    named = set()
    for command in re.findall(r"nox -s ((?:[a-z][\w-]* ?)+)", text):
        named |= set(command.split())
    noxfile = (ROOT / "noxfile.py").read_text(encoding="utf-8")
    sessions = set(re.findall(r"@nox\.session(?:\([^)]*\))?\ndef (\w+)\(", noxfile))
    assert {"demo", "tests", "package", "dist", "template"} <= named
    assert named <= sessions


def test_install_section_names_the_wheel_python_m_build_makes_without_its_version() -> None:
    # The version is written in one place (parameters_secrets.__version__): the README
    # names the wheel with a placeholder, and installs it without naming the file.
    install = README.read_text(encoding="utf-8").split("## Install\n", 1)[1].split("\n## ", 1)[0]
    wheels = set(re.findall(r"dist/(\S+?\.whl)", install))
    assert wheels == {"asgi_parameters_secrets-VERSION-py3-none-any.whl"}
    assert parameters_secrets.__version__ not in install
    assert 'pip install --find-links dist "asgi-parameters-secrets[fastapi]"' in install
