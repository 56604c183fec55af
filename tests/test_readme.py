"""The code blocks of README.md and of the docs site (docs/**/*.md) run as a reader would
paste them.

The rule, for whoever adds a block to README.md or a page under docs/:

- Every ```python block runs, unless the line just before its opening fence is
  ``<!-- not run: REASON -->`` (a signature, "before" code, an excerpt). The reason is
  required. A fence must start its line: an indented one (inside an admonition or a list)
  would escape this rule, and is refused.
- Each block runs alone, as a script (``__name__ == "__main__"``), in a fresh Python
  subprocess, in an empty working directory, with
  ``PARAMETERS_SECRETS_SOURCE=file:examples/local-values.json`` and no AWS, Lambda or
  extension variable. So a block needs its own imports and declarations, and the values
  file must hold every name the block reads: add them there.
- A block that defines ``handler`` as a Mangum handler is then invoked once, with an API
  Gateway HTTP API ``GET /`` event, and must answer 200. Any other ``handler`` (an SQS
  handler, say) is only defined: a block that wants it run calls it itself.
- Nothing a block prints, nor the handler's answer, may hold a secret value of the values
  file.
- Every ```json block parses; a values file (a ```json block with ``"parameters"`` or
  ``"secrets"``) loads with ``StaticSource.from_file`` and serves every name in it.
"""

from __future__ import annotations

import json
import os
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
    current_values,
)
from parameters_secrets.sources import StaticSource
from tests.lambda_events import invoke, make_event
from tests.processes import clean_environment

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
DOCUMENTS = [README, *sorted(DOCS.glob("**/*.md"))]
VALUES_FILE = ROOT / "examples" / "local-values.json"
NOT_RUN = re.compile(r"<!--\s*not run:(?P<reason>.*?)-->")
FENCE = re.compile(r"(?P<indent>\s*)```(?P<language>\w*)\s*")
REPORT_PREFIX = "readme-block-report: "
README_MAX_LINES = 250  # a front page (DESIGN.md); the manual is docs/


def secret_values() -> list[str]:
    """The values file's secrets: SecureString values and secrets' passwords."""
    data = json.loads(VALUES_FILE.read_text(encoding="utf-8"))
    found = [
        spec["value"]
        for spec in data["parameters"].values()
        if isinstance(spec, dict) and spec.get("type") == "SecureString"
    ]
    found += [spec["json"]["password"] for spec in data["secrets"].values()]
    return found


SECRET_VALUES = secret_values()

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
    document: str  # relative to the repository's root
    language: str
    code: str
    line: int  # of the opening fence, 1-based
    heading: str
    skip_reason: str | None

    @property
    def where(self) -> str:
        return f"{self.document}:{self.line}"

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.heading.lower()).strip("-")
        return f"{self.document}-{slug}-line{self.line}"


def readme_blocks(text: str, document: str = "README.md") -> list[Block]:
    """Every fenced block, with the heading above it and its not-run marker, if any."""
    blocks: list[Block] = []
    lines = text.splitlines()
    heading = "top"
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        fence = FENCE.fullmatch(line)
        if fence is None:
            index += 1
            continue
        if fence.group("indent"):
            raise ValueError(f"{document}:{index + 1}: an indented fence escapes the tests")
        end = lines.index("```", index + 1)
        marker = NOT_RUN.search(lines[index - 1]) if index else None
        if marker is not None and not marker.group("reason").strip():
            raise ValueError(f"{document}:{index}: a not-run marker needs a reason")
        blocks.append(
            Block(
                document=document,
                language=fence.group("language"),
                code="\n".join(lines[index + 1 : end]) + "\n",
                line=index + 1,
                heading=heading,
                skip_reason=marker.group("reason").strip() if marker else None,
            )
        )
        index = end + 1
    return blocks


BLOCKS = [
    block
    for path in DOCUMENTS
    for block in readme_blocks(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
]
PYTHON_BLOCKS = [block for block in BLOCKS if block.language == "python"]
JSON_BLOCKS = [block for block in BLOCKS if block.language == "json"]


def run_block(
    block: Block, tmp_path: Path, environment: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    script = tmp_path / f"block_{re.sub(r'[^a-z0-9]+', '_', block.id.lower())}.py"
    script.write_text(block.code, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-c", RUNNER, str(script), json.dumps(make_event("http_api_v2", "/"))],
        cwd=tmp_path,
        env=clean_environment(
            {
                "PARAMETERS_SECRETS_SOURCE": f"file:{VALUES_FILE}",
                # This checkout's package first, whatever is installed.
                "PYTHONPATH": os.pathsep.join([str(ROOT / "middleware"), str(ROOT)]),
                **(environment or {}),
            }
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def block_report(block: Block, tmp_path: Path) -> dict[str, Any]:
    """Run ``block``; what its runner reported, once it exited 0 and leaked no secret."""
    result = run_block(block, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{block.where}\n{output}"
    leaked = [secret for secret in SECRET_VALUES if secret in output]
    assert not leaked, f"{block.where} printed a secret value"
    reports = [line for line in result.stdout.splitlines() if line.startswith(REPORT_PREFIX)]
    assert len(reports) == 1, result.stdout
    report: dict[str, Any] = json.loads(reports[0].removeprefix(REPORT_PREFIX))
    return report


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[block.id for block in PYTHON_BLOCKS])
def test_python_block_runs(block: Block, tmp_path: Path) -> None:
    if block.skip_reason is not None:
        pytest.skip(f"{block.where}: not run: {block.skip_reason}")
    report = block_report(block, tmp_path)
    if report["handler"] == "Mangum":
        response = report["response"]
        assert response["statusCode"] == 200, (block.where, response)


def blocks_under(document: str, heading: str) -> list[Block]:
    return [b for b in PYTHON_BLOCKS if (b.document, b.heading) == (document, heading)]


APPS = {
    ("README.md", "Example"): {"user": "app", "beta": True},
    ("docs/index.md", "A first app"): {"user": "app", "beta": True},
    ("docs/frameworks.md", "FastAPI"): {"user": "app", "test_mode": True},
    ("docs/frameworks.md", "Starlette"): {"user": "app"},
    ("docs/frameworks.md", "Flask behind Mangum"): {"user": "app"},
    ("docs/frameworks.md", "Middleware options"): {"user": "app"},
    ("docs/init-snapstart.md", "Values at INIT"): {"user": "app", "same": True},
}


@pytest.mark.parametrize(("document", "heading"), APPS, ids=[f"{d}-{h}" for d, h in APPS])
def test_framework_apps_run_and_answer_through_mangum(
    tmp_path: Path, document: str, heading: str
) -> None:
    """The apps the docs show are run (not marked away), are Mangum handlers, and answer
    with the values of the values file."""
    [block] = blocks_under(document, heading)
    assert block.skip_reason is None
    report = block_report(block, tmp_path)
    assert report["handler"] == "Mangum"
    assert json.loads(report["response"]["body"]) == APPS[document, heading]


def test_the_readme_example_is_getting_started_s_first_app() -> None:
    [readme] = blocks_under("README.md", "Example")
    [first] = blocks_under("docs/index.md", "A first app")
    assert readme.code == first.code


def test_the_readme_example_fails_at_import_on_a_bad_values_file(tmp_path: Path) -> None:
    """Its store is built at module level: a bad values file stops the import (a clean
    error) instead of answering 500 to every request."""
    [block] = blocks_under("README.md", "Example")
    bad = tmp_path / "values.json"
    bad.write_text('{"parameters": {"/my-app/prod/api-key": 3}}', encoding="utf-8")
    result = run_block(block, tmp_path, {"PARAMETERS_SECRETS_SOURCE": f"file:{bad}"})
    assert result.returncode != 0
    assert "ConfigurationError" in result.stderr
    assert REPORT_PREFIX not in result.stdout


def test_every_skipped_block_says_why() -> None:
    skipped = [block for block in PYTHON_BLOCKS if block.skip_reason is not None]
    assert all(block.skip_reason for block in skipped)
    assert len(skipped) < len(PYTHON_BLOCKS)


def test_a_marker_without_a_reason_is_refused() -> None:
    with pytest.raises(ValueError, match="needs a reason"):
        readme_blocks("text\n<!-- not run: -->\n```python\nx = 1\n```\n")


def test_an_indented_fence_is_refused() -> None:
    with pytest.raises(ValueError, match="indented fence"):
        readme_blocks("!!! note\n    ```python\n    x = 1\n    ```\n", "docs/page.md")


@pytest.mark.parametrize("block", JSON_BLOCKS, ids=[block.id for block in JSON_BLOCKS])
def test_json_block_parses(block: Block) -> None:
    json.loads(block.code)


def test_the_values_file_block_loads_and_serves_every_name(tmp_path: Path) -> None:
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


def nox_sessions_named(text: str) -> set[str]:
    named: set[str] = set()
    for command in re.findall(r"nox -s ((?:[a-z][\w-]* ?)+)", text):
        named |= set(command.split())
    return named


def test_every_nox_session_the_docs_name_exists() -> None:
    readme = nox_sessions_named(README.read_text(encoding="utf-8"))
    everywhere = set().union(
        *(nox_sessions_named(path.read_text(encoding="utf-8")) for path in DOCUMENTS)
    )
    noxfile = (ROOT / "noxfile.py").read_text(encoding="utf-8")
    sessions = set(re.findall(r"@nox\.session(?:\([^)]*\))?\ndef (\w+)\(", noxfile))
    assert {"demo", "tests"} <= readme  # the quickstart's two commands
    assert {"demo", "tests", "package", "dist", "template", "docs", "bench"} <= everywhere
    assert everywhere <= sessions


def test_install_section_names_the_wheel_python_m_build_makes_without_its_version() -> None:
    # The version is written in one place (parameters_secrets.__version__): the docs name
    # the wheel with a placeholder, and install it without naming the file.
    page = (DOCS / "index.md").read_text(encoding="utf-8")
    install = page.split("## Install\n", 1)[1].split("\n## ", 1)[0]
    wheels = set(re.findall(r"dist/(\S+?\.whl)", install))
    assert wheels == {"asgi_parameters_secrets-VERSION-py3-none-any.whl"}
    assert parameters_secrets.__version__ not in install
    assert 'pip install --find-links dist "asgi-parameters-secrets[fastapi]"' in install


def test_the_readme_is_a_front_page_whose_links_lead_somewhere() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    targets = {t.split("#", 1)[0] for t in re.findall(r"\]\(([^)]+)\)", text)}
    local = {t for t in targets if t and "://" not in t}
    # One line per page; a page that includes a root file (the changelog) by linking that.
    assert {page_as_linked(p) for p in DOCS.glob("*.md")} <= local
    assert all((ROOT / target).exists() for target in local), local


INCLUDE = re.compile(r'--8<-- "(?P<name>[A-Z]+\.md)"\s*')


def page_as_linked(page: Path) -> str:
    """What the README links for a docs page: the page, or the root file it includes."""
    include = INCLUDE.fullmatch(page.read_text(encoding="utf-8"))
    return include.group("name") if include else f"docs/{page.name}"


def test_the_root_files_the_site_includes_exist_and_link_only_to_pages() -> None:
    """docs/changelog.md and docs/contributing.md are CHANGELOG.md and CONTRIBUTING.md,
    included by scripts/docs_hooks.py, which rewrites ``docs/page.md`` links to pages."""
    included = [page_as_linked(p) for p in DOCS.glob("*.md")]
    assert {"CHANGELOG.md", "CONTRIBUTING.md"} <= set(included)
    for name in included:
        if name.startswith("docs/"):
            continue
        targets = re.findall(r"\]\(([^)#]+)", (ROOT / name).read_text(encoding="utf-8"))
        local = [t for t in targets if "://" not in t]
        assert all(t.startswith("docs/") and (ROOT / t).exists() for t in local), (name, local)


def test_the_docs_show_the_benchmarks_chart_of_record() -> None:
    """mkdocs publishes only docs/: its copy must be the chart nox -s bench wrote."""
    chart = (ROOT / "benchmarks" / "results.png").read_bytes()
    assert (DOCS / "results.png").read_bytes() == chart


def test_a_route_has_one_name_in_the_docs_and_the_examples() -> None:
    """The refresh-after-rotation route is POST /pay, the injected value GET /injected,
    in the FastAPI example and wherever the docs or the examples' docstrings name them."""
    texts = {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in DOCUMENTS}
    texts |= {
        str(p.relative_to(ROOT)): p.read_text(encoding="utf-8")
        for p in sorted((ROOT / "examples").glob("*.py"))
    }
    for name, text in texts.items():
        for method, path in re.findall(r"\b(GET|POST|PUT|DELETE) (/pay|/injected)\b", text):
            assert (method, path) in {("POST", "/pay"), ("GET", "/injected")}, name
        for method, path in re.findall(r"@app\.(get|post)\(\"(/pay|/injected)\"\)", text):
            assert (method, path) in {("post", "/pay"), ("get", "/injected")}, name
    fastapi_example = texts["examples/fastapi_app.py"]
    assert '@app.post("/pay")' in fastapi_example
    assert '@app.get("/injected")' in fastapi_example


FIRST_SCREEN_LINES = 25  # what a laptop shows of a page above the fold


def test_getting_started_shows_its_first_example_on_the_first_screen() -> None:
    """A reader sees runnable code before any install caveat: the first ```python block
    of docs/index.md opens within its first screen, and is run (not marked away)."""
    page = (DOCS / "index.md").read_text(encoding="utf-8")
    first = next(b for b in readme_blocks(page, "docs/index.md") if b.language == "python")
    assert first.line <= FIRST_SCREEN_LINES, first.where
    assert first.skip_reason is None


# A command, not a mention: uvicorn given an app, the local server given an option.
RUNS = re.compile(r"\buvicorn (?P<module>[\w.]+):\w+|\bparameters[-_]secrets serve --")
INSTALL = re.compile(r"""pip install ["']?[.\w-]*\[(?P<extras>[\w,]+)\]""")
# What a command needs installed: the server, and the app it serves.
NEEDS = {
    "uvicorn": "uvicorn",
    "examples.fastapi_app": "fastapi",
    "examples.starlette_app": "starlette",
}
LOOKBACK_LINES = 8  # a command's install is in its block or the sentence before it


def extras_providing() -> dict[str, set[str]]:
    """Each extra of the installed package, and the distributions it brings (the metadata
    lists an extra's extras flattened)."""
    from importlib.metadata import requires

    found: dict[str, set[str]] = {}
    for requirement in requires("asgi-parameters-secrets") or []:
        name, _, marker = requirement.partition(";")
        extra = re.search(r"extra == ['\"](\w+)['\"]", marker)
        if extra:
            distribution = re.split(r"[<>=!\[ ]", name.strip(), maxsplit=1)[0]
            found.setdefault(extra.group(1), set()).add(distribution.lower())
    return found


def test_every_command_that_serves_names_the_extras_it_needs_in_its_install() -> None:
    """A reader who pastes the install above a ``uvicorn`` or ``parameters-secrets serve``
    command gets uvicorn and the app's framework: ``.[fastapi]`` alone has no uvicorn."""
    provides = extras_providing()
    missing = []
    for path in DOCUMENTS:
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines):
            for run in RUNS.finditer(line):
                needed = {"uvicorn"} | {NEEDS[m] for m in [run.group("module")] if m in NEEDS}
                window = "\n".join(lines[max(0, number - LOOKBACK_LINES) : number + 1])
                installs = [set(m.group("extras").split(",")) for m in INSTALL.finditer(window)]
                brought = set().union(*(provides.get(e, set()) for i in installs for e in i))
                if not needed <= brought:
                    missing.append(
                        f"{path.relative_to(ROOT)}:{number + 1}: {sorted(needed - brought)}"
                    )
    assert not missing, missing
