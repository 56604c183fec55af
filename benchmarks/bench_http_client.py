"""httpx or httpx2 in the zip: the cold import of the package's HTTP client and what each
client adds to the zip.

    PYTHONPATH=middleware:DIR python -m benchmarks.bench_http_client   (DIR holds httpx2)

Import: a fresh ``python -I``-like interpreter (this environment's ``sys.path``) runs
``from parameters_secrets._http import httpx`` between two ``time.perf_counter()`` calls;
with httpx2 made unimportable (a ``None`` entry in ``sys.modules``) the package takes
httpx. Median of N interleaved runs after one untimed run of each. Size: the
distributions only that client needs (httpx: httpx, httpcore, certifi; httpx2: httpx2,
httpcore2, truststore; both need h11, anyio, idna), zipped as the builder zips (deflate
level 9), sources only.
"""

from __future__ import annotations

import importlib.util
import io
import os
import statistics
import subprocess
import sys
import zipfile
from pathlib import Path

RUNS = 15
ONLY = {"httpx": ("httpx", "httpcore", "certifi"), "httpx2": ("httpx2", "httpcore2", "truststore")}
_CODE = """import time
{block}t0 = time.perf_counter()
from parameters_secrets._http import httpx
print(time.perf_counter() - t0, httpx.__name__)
"""


def import_seconds(client: str) -> float:
    block = "import sys; sys.modules['httpx2'] = None\n" if client == "httpx" else ""
    out = subprocess.run(
        [sys.executable, "-c", _CODE.format(block=block)],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[1] == client, out
    return float(out[0])


def zipped_bytes(packages: tuple[str, ...]) -> int:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name in packages:
            spec = importlib.util.find_spec(name)
            assert spec is not None, name
            assert spec.origin is not None, name
            root = Path(spec.origin).parent
            for path in sorted(root.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    archive.writestr(str(path.relative_to(root.parent)), path.read_bytes())
    return len(buffer.getvalue())


def main() -> None:
    clients = [c for c in ONLY if importlib.util.find_spec(c) is not None]
    for client in clients:
        import_seconds(client)  # untimed: the page cache
    samples: dict[str, list[float]] = {client: [] for client in clients}
    for _ in range(RUNS):
        for client in clients:
            samples[client].append(import_seconds(client))
    print(f"| client | import (median of {RUNS}) | zip bytes of its own distributions |")
    print("|---|---|---|")
    for client in clients:
        median_ms = statistics.median(samples[client]) * 1000
        print(f"| {client} | {median_ms:.1f} ms | {zipped_bytes(ONLY[client]) / 1e3:.0f} kB |")


if __name__ == "__main__":
    main()
