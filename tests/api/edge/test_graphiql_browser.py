"""GraphiQL in a real browser: headless Chromium (Debian's `chromium`, driven through
Playwright, no browser download) loads the page from the test server with no request
leaving the machine, runs a query typed into it, and receives over its websocket a chat
message that another client sends. Skipped, saying why, where Chromium is not installed
(`apt-get install -y chromium`; .ci/run installs it)."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

import pytest
from playwright.async_api import Page, WebSocket, async_playwright

from tests.support.chat import sent, task_chat
from tests.support.graphql_client import GraphQLClient

CHROMIUM = next(
    filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="needs a Chromium on PATH: apt-get install -y chromium (.ci/run installs it)",
)
WAIT_MS = 20_000
RESPONSE = "document.querySelector('.result-window .CodeMirror').CodeMirror.getValue()"


@dataclass
class Watched:
    """A page, and everything it asked for: requests, websockets, their frames, errors."""

    page: Page
    requests: list[str] = field(default_factory=list)
    websockets: list[str] = field(default_factory=list)
    frames_sent: list[dict[str, object]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def watch_socket(self, socket: WebSocket) -> None:
        self.websockets.append(socket.url)
        socket.on("framesent", lambda payload: self.frames_sent.append(json.loads(payload)))


@pytest.fixture
async def browser_page() -> AsyncIterator[Watched]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            context = await browser.new_context()
            watched = Watched(await context.new_page())
            # Every request of the context: the page's, its workers', a service worker's.
            context.on("request", lambda request: watched.requests.append(request.url))
            watched.page.on("websocket", watched.watch_socket)
            # A refused load, a CSP violation or a script error is a console error.
            watched.page.on(
                "console",
                lambda message: (
                    watched.errors.append(message.text) if message.type == "error" else None
                ),
            )
            watched.page.on("pageerror", lambda error: watched.errors.append(str(error)))
            yield watched
        finally:
            await browser.close()


async def _open(watched: Watched, base_url: str, token: str) -> None:
    """Load GraphiQL and put the access token in its Headers editor, as a person would."""
    page = watched.page
    await page.goto(base_url + "/graphql")
    await page.wait_for_selector(".graphiql-query-editor .CodeMirror", timeout=WAIT_MS)
    await page.click("button[data-name='headers']")
    await _type(page, ".graphiql-editor-tool .graphiql-editor:not(.hidden)", "")
    await page.keyboard.insert_text(json.dumps({"Authorization": f"Bearer {token}"}))


async def _type(page: Page, editor: str, text: str) -> None:
    """Replace what an editor holds with `text`, typed in (without the brackets that
    CodeMirror would close on each keystroke)."""
    await page.click(f"{editor} .CodeMirror-lines")
    await page.keyboard.press("Control+A")
    await page.keyboard.press("Delete")
    await page.keyboard.insert_text(text)


async def _run(page: Page, query: str) -> None:
    await _type(page, ".graphiql-query-editor", query)
    await page.click(".graphiql-execute-button")


async def _response_shows(page: Page, text: str) -> None:
    await page.wait_for_function(f"(text) => {RESPONSE}.includes(text)", arg=text, timeout=WAIT_MS)


def _assert_stayed_home(watched: Watched, base_url: str) -> None:
    origin = urlsplit(base_url)
    assert watched.requests, "the page made no request at all"
    for url in watched.requests:
        parts = urlsplit(url)
        # data: URLs (GraphiQL's embedded fonts and icons) are no request to anywhere.
        assert parts.scheme == "data" or parts.netloc == origin.netloc, url
    for url in watched.websockets:
        assert url == f"ws://{origin.netloc}/graphql", url
    assert watched.errors == []


async def test_a_query_typed_into_the_page_shows_its_result_with_nothing_from_outside(
    base_url: str, browser_page: Watched, client: GraphQLClient
) -> None:
    ann = await client.member("ann@example.com")
    page = browser_page.page
    await _open(browser_page, base_url, ann.access)
    await _run(page, "{ me { email } }")
    await _response_shows(page, '"email": "ann@example.com"')
    _assert_stayed_home(browser_page, base_url)
    # GraphiQL's tabs and history (the token with each run) last only as long as the tab.
    await page.wait_for_function(
        "(token) => JSON.stringify(sessionStorage).includes(token)",
        arg=ann.access,
        timeout=WAIT_MS,
    )
    assert ann.access not in await page.evaluate("JSON.stringify(localStorage)")
    # Every script and style came from the page's own static route.
    loaded = {urlsplit(url).path for url in browser_page.requests}
    assert any(path.endswith("/graphiql.min.js") for path in loaded), loaded
    assert all(path == "/graphql" or path.startswith("/graphiql/static/") for path in loaded)


async def test_a_link_opens_the_page_with_its_query_and_variables(
    base_url: str, browser_page: Watched
) -> None:
    page = browser_page.page
    link = urlencode({"q": "query Mine($first: Int) { me { email } }", "variables": '{"first": 2}'})
    await page.goto(f"{base_url}/graphql?{link}")
    await page.wait_for_selector(".graphiql-query-editor .CodeMirror", timeout=WAIT_MS)
    editors = "document.querySelectorAll('.graphiql-editors .CodeMirror')"
    query, variables = await page.evaluate(
        f"[...{editors}].slice(0, 2).map(e => e.CodeMirror.getValue())"
    )
    assert query == "query Mine($first: Int) { me { email } }"
    assert variables == '{"first": 2}'
    _assert_stayed_home(browser_page, base_url)


async def test_a_subscription_started_on_the_page_receives_another_clients_message(
    base_url: str, browser_page: Watched, client: GraphQLClient
) -> None:
    chat = await task_chat(client)
    page = browser_page.page
    await _open(browser_page, base_url, chat.poster.access)
    # `after: 0` replays what the subscription might miss while it reaches the broker:
    # the message below arrives whether or not it was sent before the broker knew.
    await _run(
        page,
        f'subscription {{ messageAdded(conversationId: "{chat.conversation_id}", after: 0)'
        " { text sender { id } } }",
    )
    await _until_sent(browser_page, "subscribe")
    message = await sent(client, chat.tasker, chat.conversation_id, "Live from another client")
    await _response_shows(page, '"text": "Live from another client"')
    assert message["sender"]["id"] in await page.evaluate(RESPONSE)
    # The token of the Headers editor went in connection_init, over graphql-transport-ws.
    init = next(frame for frame in browser_page.frames_sent if frame["type"] == "connection_init")
    assert init["payload"] == {"Authorization": f"Bearer {chat.poster.access}"}
    _assert_stayed_home(browser_page, base_url)


async def _until_sent(watched: Watched, kind: str) -> None:
    """Wait for the page to send a websocket message of this type."""
    async with asyncio.timeout(WAIT_MS / 1000):
        while not any(frame.get("type") == kind for frame in watched.frames_sent):
            await asyncio.sleep(0.05)
