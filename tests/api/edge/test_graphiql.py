"""GraphiQL's page and its packaged files over HTTP: only this origin's files, the right
types and caching, nothing else served from the route, nothing at all in production, and
every file inside the wheel. tests/api/edge/test_graphiql_browser.py runs the page in Chromium."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import zipfile
from html.parser import HTMLParser
from importlib.resources import files
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from server.graphiql.page import FILES, PREFIX, assets
from server.runtime import Runtime
from tests.conftest import serve

HTML = {"accept": "text/html"}
REPOSITORY = Path(__file__).parents[3]


class _Page(HTMLParser):
    """The URLs a page loads, and the text of any inline script."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script":
            self._in_script = "src" not in found
            self.loads.append(found.get("src") or "")
        elif tag == "link" and found.get("rel") == "stylesheet":
            self.loads.append(found.get("href") or "")

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False


def _page(html: str) -> _Page:
    parsed = _Page()
    parsed.feed(html)
    return parsed


async def test_the_page_loads_only_its_own_files_under_a_strict_policy(
    base_url: str,
) -> None:
    async with httpx.AsyncClient(base_url=base_url) as http:
        page = await http.get("/graphql", headers=HTML)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self';" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert "http" not in policy  # no CDN, nor any other host
        assert page.headers["cache-control"] == "no-store"
        parsed = _page(page.text)
        assert parsed.inline_scripts == []
        assert len(parsed.loads) == len(FILES)
        served = {asset.url: asset for asset in assets().values()}
        static = files("server.graphiql").joinpath("static")
        for url in parsed.loads:
            assert urlsplit(url).netloc == "" and url.startswith(PREFIX + "/"), url
            response = await http.get(url)
            assert response.status_code == 200, url
            asset = served[url]
            kind = "text/javascript" if url.endswith(".js") else "text/css"
            assert response.headers["content-type"] == f"{kind}; charset=utf-8"
            assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.content == static.joinpath(asset.name).read_bytes()


async def test_a_file_is_only_served_under_its_own_digest(base_url: str) -> None:
    script = assets()["gigql-graphiql.js"]
    other = assets()["graphiql.min.js"]
    async with httpx.AsyncClient(base_url=base_url) as http:
        assert (await http.get(script.url)).status_code == 200
        stale = await http.get(f"{PREFIX}/{other.digest}/gigql-graphiql.js")
        assert stale.status_code == 404  # else cached for a year under the wrong digest
        assert (await http.post(script.url)).status_code == 405


async def _raw_get(base_url: str, target: str) -> tuple[int, str, bytes]:
    """GET with the target sent exactly as given (no client normalises `..` away): the
    status, the Location header if any, and the body."""
    address = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    try:
        writer.write(
            f"GET {target} HTTP/1.1\r\nHost: {address.netloc}\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    location = next(
        (line[9:].strip() for line in head.split(b"\r\n") if line.lower().startswith(b"location:")),
        b"",
    )
    return status, location.decode(), body


@pytest.mark.parametrize(
    "target",
    [
        "{prefix}",
        "{prefix}/",
        "{prefix}/{digest}",
        "{prefix}/{digest}/",
        "{prefix}/{digest}/vendor",
        "{prefix}/{digest}/vendor/",
        "{prefix}/{digest}/vendor/graphiql.min.js",
        "{prefix}/{digest}/README.md",
        "{prefix}/{digest}/graphiql.LICENSE.txt",
        "{prefix}/{digest}/page.py",
        "{prefix}/{digest}/__init__.py",
        "{prefix}/{digest}/../page.py",
        "{prefix}/{digest}/..%2fpage.py",
        "{prefix}/{digest}/%2e%2e%2f%2e%2e%2fpage.py",
        "{prefix}/{digest}/..%2f..%2f..%2f..%2fpyproject.toml",
        "{prefix}/..%2f..%2f..%2f..%2fpyproject.toml/x",
        "{prefix}/{digest}/..%5c..%5cpage.py",
        "{prefix}/{digest}/%2fetc%2fpasswd",
        "{prefix}/{digest}/gigql-graphiql.js%00.py",
        "{prefix}/{digest}/gigql-graphiql.js/",
        "{prefix}/{digest}/GIGQL-GRAPHIQL.JS",
    ],
)
async def test_the_route_serves_no_other_file_and_lists_no_folder(
    base_url: str, target: str
) -> None:
    digest = assets()["gigql-graphiql.js"].digest
    sent = target.format(prefix=PREFIX, digest=digest)
    status, location, body = await _raw_get(base_url, sent)
    if status == 307:  # Starlette's router drops a trailing slash, and that is all
        assert sent.endswith("/") and urlsplit(location).path == sent.rstrip("/"), location
    else:
        assert status in (400, 404), (status, body[:200])
    for secret in (b"import ", b"[project]", b"root:", b"MIT License", b"<a href"):
        assert secret not in body


async def test_production_serves_neither_the_page_nor_its_files(runtime: Runtime) -> None:
    script = assets()["gigql-graphiql.js"]
    async with (
        serve(runtime, graphiql=False) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        assert (await http.get("/graphql", headers=HTML)).status_code == 404
        assert (await http.get(script.url)).status_code == 404


def test_the_wheel_carries_the_page_and_its_files(tmp_path: Path) -> None:
    # What `pip install gigql` installs, built as a release would be.
    build = ["wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), "."]
    subprocess.run(
        [sys.executable, "-m", "pip", *build],
        cwd=REPOSITORY,
        check=True,
    )
    (wheel,) = tmp_path.glob("gigql-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = {f"server/graphiql/static/{name}" for name in FILES}
    wanted |= {"server/templates/graphiql.html", "server/graphiql/static/README.md"}
    wanted |= {
        f"server/graphiql/static/vendor/{name}.LICENSE.txt"
        for name in ("graphiql", "react", "react-dom")
    }
    assert wanted <= names, sorted(wanted - names)
