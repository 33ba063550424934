"""``/docs`` (Swagger UI) and ``/redoc`` work without the internet (issue 16): every script,
stylesheet and icon they reference is served by the server itself (``fastapi-offline``'s files)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from live import live_server


class _Refs(HTMLParser):
    """Every URL an HTML page loads: ``src`` and ``href`` attributes, ReDoc's ``spec-url`` and the
    ``url:`` of Swagger UI's inline configuration (both the OpenAPI schema)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []  # (tag, url)
        self._script = False

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href", "spec-url") and value:
                self.urls.append((tag, value))
        self._script = tag == "script"

    def handle_endtag(self, tag):
        self._script = False

    def handle_data(self, data):
        if self._script:
            self.urls += [("config", m) for m in re.findall(r"""\burl:\s*['"]([^'"]+)['"]""", data)]


@pytest.fixture(scope="module")
def api(hybrid_bundle):
    with live_server(hybrid_bundle) as client:
        yield client


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_load_everything_from_the_server_itself(api, page):
    r = api.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    refs = _Refs()
    refs.feed(r.text)
    urls = [url for _, url in refs.urls]
    assert any(u.endswith(".js") for u in urls), urls  # the viewer itself
    assert "/openapi.json" in urls, urls
    if page == "/docs":
        assert any(u.endswith(".css") for u in urls), urls
    # nothing from another host (a CDN, Google Fonts, Swagger's online validator) ...
    assert not re.search(r"https?://", r.text), re.findall(r"https?://\S+", r.text)
    for tag, url in refs.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc and url.startswith("/"), (tag, url)
        # ... and every file is there, non-empty, of the right type
        asset = api.get(url)
        assert asset.status_code == 200 and len(asset.content) > 100, (url, asset.status_code)
        kind = asset.headers["content-type"]
        if url.endswith(".js"):
            assert "javascript" in kind, (url, kind)
        elif url.endswith(".css"):
            assert kind.startswith("text/css"), (url, kind)
        elif url.endswith(".png"):
            assert kind == "image/png", (url, kind)
    if page == "/docs":  # the OAuth2 redirect page Swagger UI links to
        assert api.get("/docs/oauth2-redirect").status_code == 200


def test_docs_assets_are_not_in_the_api_schema(api):
    paths = api.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/docs") or p == "/redoc"]
