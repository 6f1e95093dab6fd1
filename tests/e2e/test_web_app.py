"""The reference web app (web/) in a real browser: Debian's Chromium through the real gateway.

One stack (the session's, started by the `make dev` launcher) and few page loads: every
check is what a person sees on the page. The browser comes from 127.0.0.1, whose credential
bucket at the gateway (10 at once, then one every 3 s) it shares with the other browser
tests, so accounts are made and logged in over the API from addresses of their own, and
the browser gets the login as its HttpOnly refresh cookie, exactly as a login in the page
would leave it; the journey test alone registers and logs in through the forms.

Screenshots of the main screens go to tests/e2e/artifacts/web/ (git-ignored). With
TASKGATE_README_SCREENSHOT=1 (`make screenshot`) the board's is also written to
docs/images/board.png, the README's picture.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from browser_support import cut_off_network
from node_packages import installed
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Locator,
    Page,
    ViewportSize,
    expect,
)

from taskgate_devstack.mail_sink import links, read_mail
from taskgate_devstack.stack import DevStack

HERE = Path(__file__).parent
ARTIFACTS = HERE / "artifacts" / "web"
AXE_DIR = HERE / "axe"
README_IMAGE = HERE.parent.parent / "docs" / "images" / "board.png"
PASSWORD = "correct horse battery"
DESKTOP: ViewportSize = {"width": 1280, "height": 800}

expect.set_options(timeout=15_000)


@pytest.fixture(scope="module", autouse=True)
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def axe_source() -> str:
    """axe-core from npm, pinned by axe/package-lock.json."""
    return (installed(AXE_DIR) / "axe-core" / "axe.min.js").read_text()


class WebUser:
    """An account made over the API from the test's own address."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.username = f"web_{uuid.uuid4().hex[:10]}"
        self.email = f"{self.username}@example.com"
        body = {"email": self.email, "username": self.username, "password": PASSWORD}
        assert client.post("/auth/register", json=body).status_code == 201
        self.token = self._login()["access_token"]

    def _login(self, cookie: bool = False) -> dict[str, str]:
        body = {"username": self.username, "password": PASSWORD}
        response = self.client.post(
            "/auth/login", params={"cookie": cookie} if cookie else None, json=body
        )
        assert response.status_code == 200, response.text
        return {"access_token": response.json()["access_token"], **dict(response.cookies)}

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def api(self, method: str, path: str, json: object = None) -> httpx.Response:
        response = self.client.request(method, path, headers=self.headers, json=json)
        assert response.status_code < 400, response.text
        return response

    def logged_in_context(
        self, browser: Browser, gateway_url: str, bypass_csp: bool = False
    ) -> BrowserContext:
        """A browser profile holding a login of its own (a new session, as a login there
        would make): the refresh cookie, HttpOnly, Path=/auth; the page refreshes from it."""
        login = self._login(cookie=True)
        context = browser.new_context(viewport=DESKTOP, bypass_csp=bypass_csp)
        host = urlsplit(gateway_url).hostname or "localhost"
        context.add_cookies(
            [
                {
                    "name": "taskgate_refresh",
                    "value": login["taskgate_refresh"],
                    "domain": host,
                    "path": "/auth",
                    "httpOnly": True,
                    "secure": True,
                    "sameSite": "Strict",
                }
            ]
        )
        # The app refreshes on load only where it has logged in before (localStorage hint).
        context.add_init_script("localStorage.setItem('taskgate.loggedIn', '1')")
        return context

    def live_device(self, browser: Browser, gateway_url: str) -> Page:
        """Another device of this user: its own login, the board open, its stream live."""
        page = self.logged_in_context(browser, gateway_url).new_page()
        page.goto(gateway_url + "/")
        expect(page.get_by_text("Live", exact=True)).to_be_visible()
        return page

    def default_board(self) -> dict[str, object]:
        board_id = self.api("GET", "/api/boards").json()["items"][0]["id"]
        board: dict[str, object] = self.api("GET", f"/api/boards/{board_id}").json()
        return board


# The one console error allowed: Chromium logs a 429 answer as a failed load. The browser
# shares 127.0.0.1's credential bucket at the gateway with every browser test of the session,
# and when a refresh meets that 429 the app says so, waits `Retry-After` and tries again.
RATE_LIMITED_LOAD = "the server responded with a status of 429"


def watch_console(page: Page) -> list[str]:
    """Errors the page logs or throws (the gateway's 429 excepted, see above)."""
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type == "error" and RATE_LIMITED_LOAD not in message.text:
            problems.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda e: problems.append(str(e)))
    return problems


def mail_link(stack: DevStack, to: str, path: str) -> str:
    assert stack.mail_dir is not None
    for _ in range(100):
        for file in sorted(stack.mail_dir.glob("*.eml")):
            message = read_mail(file)
            if message["To"] == to:
                found = [link for link in links(message) if urlsplit(link).path == path]
                if found:
                    return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no mail to {to} with a {path} link")


def card(within: Page | Locator, title: str) -> Locator:
    """The card whose title is `title` (its title is the button that opens the editor)."""
    page = within if isinstance(within, Page) else within.page
    return within.locator(".card", has=page.get_by_role("button", name=title, exact=True))


def column(page: Page, name: str) -> Locator:
    return page.get_by_role("region", name=name, exact=True)


def card_menu(page: Page, title: str) -> Locator:
    """Open the card's menu (move to a column, up, down, delete) and answer its buttons."""
    page.get_by_label(f"Move or delete “{title}”").click()
    return page.get_by_role("group", name=f"Actions for {title}")


@pytest.fixture
def user(sync_gateway: httpx.Client) -> WebUser:
    return WebUser(sync_gateway)


def test_the_journey_register_verify_board_columns_cards_drag_and_reload(
    browser: Browser, stack: DevStack, gateway_url: str
) -> None:
    # Wide enough for four columns side by side: a drag needs its target on screen.
    context = browser.new_context(viewport={"width": 1600, "height": 900})
    page = context.new_page()
    problems = watch_console(page)
    refused = cut_off_network(page, gateway_url)
    name = f"journey_{uuid.uuid4().hex[:8]}"
    email = f"{name}@example.com"

    page.goto(gateway_url + "/")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "login.png")
    page.get_by_role("link", name="Create an account").click()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="My board")).to_be_visible()
    expect(page.get_by_role("button", name="Verify email: resend link")).to_be_visible()

    # The mail's link opens the app's page, which verifies the address.
    link = mail_link(stack, email, "/verify-email")
    assert link.startswith(gateway_url + "/verify-email?token=")
    page.goto(link)
    expect(page.get_by_text("Your email address is verified")).to_be_visible()
    page.get_by_role("link", name="Go to your boards").click()
    expect(page.get_by_role("heading", name="My board")).to_be_visible()
    expect(page.get_by_role("button", name="Verify email: resend link")).to_have_count(0)
    expect(page.get_by_text("Live", exact=True)).to_be_visible()

    # A board of one's own, with a column that has a WIP limit.
    page.get_by_label("New board name").fill("Launch")
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.get_by_role("heading", name="Launch")).to_be_visible()
    page.get_by_label("New column name").fill("Review")
    page.get_by_label("WIP limit of the new column (optional)").fill("2")
    page.get_by_role("button", name="Add column").click()
    expect(column(page, "Review").get_by_text("0 cards, WIP limit 2")).to_be_visible()

    for title in ("Write the plan", "Book the venue"):
        page.get_by_label("New card in To do").fill(title)
        page.get_by_label("New card in To do").press("Enter")
        expect(card(page, title)).to_be_visible()

    # Edit: description, due date, labels, checklist.
    page.get_by_role("button", name="Write the plan", exact=True).click()
    dialog = page.get_by_role("dialog", name="Edit card")
    dialog.get_by_label("Description").fill("One page, for the whole team")
    dialog.get_by_label("Due date").fill("2031-05-01")
    dialog.get_by_label("Labels").fill("work, urgent")
    dialog.get_by_label("New checklist item").fill("Collect the figures")
    dialog.get_by_role("button", name="Add item").click()
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_have_count(0)
    plan = card(page, "Write the plan")
    expect(plan.get_by_text("Due 2031-05-01")).to_be_visible()
    expect(plan.get_by_text("urgent")).to_be_visible()
    expect(plan.get_by_text("Checklist 0 of 1 done")).to_be_visible()

    # Drag and drop (HTML5) from To do to Review.
    card(page, "Book the venue").drag_to(column(page, "Review").get_by_role("list"))
    expect(card(column(page, "Review"), "Book the venue")).to_be_visible()
    expect(column(page, "Review").get_by_text("1 cards, WIP limit 2")).to_be_visible()

    # The keyboard way: the card's menu, then Alt+→.
    card_menu(page, "Write the plan").get_by_role("button", name="Move to In progress").click()
    expect(card(column(page, "In progress"), "Write the plan")).to_be_visible()
    page.get_by_role("button", name="Write the plan", exact=True).focus()
    page.keyboard.press("Alt+ArrowRight")
    expect(card(column(page, "Done"), "Write the plan")).to_be_visible()
    expect(card(page, "Write the plan").get_by_role("checkbox")).to_be_checked()

    # Complete, delete.
    page.get_by_label("New card in To do").fill("Throw away")
    page.get_by_label("New card in To do").press("Enter")
    expect(card(page, "Throw away")).to_be_visible()
    page.once("dialog", lambda d: d.accept())
    card_menu(page, "Throw away").get_by_role("button", name="Delete").click()
    expect(card(page, "Throw away")).to_have_count(0)

    # Columns reorder from their menu; a card dropped on another board's link goes there.
    page.get_by_label("Move or delete column Review").click()
    page.get_by_role("button", name="Move left").click()
    expect(page.locator(".column h2")).to_have_text(["To do", "In progress", "Review", "Done"])
    page.get_by_label("New card in To do").fill("For the other board")
    page.get_by_label("New card in To do").press("Enter")
    card(page, "For the other board").drag_to(page.get_by_role("link", name="My board"))
    expect(card(page, "For the other board")).to_have_count(0)
    page.get_by_role("link", name="My board").click()
    expect(card(column(page, "To do"), "For the other board")).to_be_visible()
    page.get_by_role("link", name="Launch").click()

    page.screenshot(path=ARTIFACTS / "journey-board.png")
    page.reload()
    expect(page.get_by_role("heading", name="Launch")).to_be_visible()
    expect(page.locator(".column h2")).to_have_text(["To do", "In progress", "Review", "Done"])
    expect(card(column(page, "Done"), "Write the plan")).to_be_visible()
    expect(card(column(page, "Review"), "Book the venue")).to_be_visible()
    expect(page.get_by_role("link", name="My board")).to_be_visible()

    assert refused == [], f"requests left the gateway's origin: {refused}"
    assert problems == [], f"console errors: {problems}"
    context.close()


def test_two_devices_of_one_user_see_each_others_changes_live(
    browser: Browser, user: WebUser, gateway_url: str
) -> None:
    page_a, page_b = user.live_device(browser, gateway_url), user.live_device(browser, gateway_url)

    page_b.get_by_label("New card in To do").fill("Made on the phone")
    page_b.get_by_label("New card in To do").press("Enter")
    expect(card(page_a, "Made on the phone")).to_be_visible()

    card(page_a, "Made on the phone").drag_to(column(page_a, "Done").get_by_role("list"))
    expect(card(column(page_b, "Done"), "Made on the phone")).to_be_visible()
    page_a.context.close()
    page_b.context.close()


def test_two_tabs_refreshing_at_once_both_stay_logged_in(
    browser: Browser, user: WebUser, gateway_url: str
) -> None:
    context = user.logged_in_context(browser, gateway_url)
    tabs = [context.new_page(), context.new_page()]
    # Both start at once with the same refresh cookie: the grace window answers both.
    for tab in tabs:
        tab.goto(gateway_url + "/", wait_until="commit")
    for tab in tabs:
        expect(tab.get_by_role("heading", name="My board")).to_be_visible()
    tabs[0].reload()
    expect(tabs[0].get_by_role("heading", name="My board")).to_be_visible()
    tabs[1].get_by_label("New card in To do").fill("Still logged in")
    tabs[1].get_by_label("New card in To do").press("Enter")
    expect(card(tabs[0], "Still logged in")).to_be_visible()
    context.close()


def test_a_stale_edit_shows_the_conflict_and_keeps_mine_on_request(
    browser: Browser, user: WebUser, gateway_url: str
) -> None:
    board = user.default_board()
    columns = board["columns"]
    assert isinstance(columns, list)
    task = user.api(
        "POST",
        "/api/tasks",
        json={"title": "Quarterly report", "board_id": board["id"], "column_id": columns[0]["id"]},
    ).json()
    context = user.logged_in_context(browser, gateway_url)
    page = context.new_page()
    page.goto(gateway_url + "/")
    page.get_by_role("button", name="Quarterly report", exact=True).click()
    dialog = page.get_by_role("dialog", name="Edit card")
    dialog.get_by_label("Title").fill("Quarterly report (mine)")

    # Meanwhile, another device renames it.
    user.api("PATCH", f"/api/tasks/{task['id']}", json={"title": "Quarterly report (theirs)"})

    dialog.get_by_role("button", name="Save").click()
    conflict = dialog.get_by_role("alert").filter(has_text="changed somewhere else")
    expect(conflict).to_be_visible()
    expect(conflict.get_by_role("cell", name="Quarterly report (theirs)")).to_be_visible()
    expect(conflict.get_by_role("cell", name="Quarterly report (mine)")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "conflict.png")
    conflict.get_by_role("button", name="Keep mine").click()
    expect(page.get_by_role("button", name="Quarterly report (mine)", exact=True)).to_be_visible()
    assert user.api("GET", f"/api/tasks/{task['id']}").json()["title"] == "Quarterly report (mine)"
    context.close()


def test_log_out_everywhere_ends_the_other_devices_session(
    browser: Browser, user: WebUser, gateway_url: str
) -> None:
    page, other = user.live_device(browser, gateway_url), user.live_device(browser, gateway_url)

    page.get_by_role("link", name="Devices").click()
    devices = page.get_by_role("list", name="Logged-in devices")
    expect(devices.get_by_role("listitem")).to_have_count(3)  # two browsers and the API login
    expect(devices.get_by_text("This device")).to_have_count(1)
    page.screenshot(path=ARTIFACTS / "devices.png")
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Log out everywhere").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.get_by_text("You are logged out.")).to_be_visible()

    # The other browser learns it from its event stream (token_revoked), without a click.
    expect(other.get_by_role("heading", name="Log in")).to_be_visible()
    expect(other.get_by_text("Your session has ended")).to_be_visible()
    other.reload()
    expect(other.get_by_role("heading", name="Log in")).to_be_visible()
    page.context.close()
    other.context.close()


def _axe_violations(page: Page, axe_source: str) -> list[dict[str, object]]:
    page.add_script_tag(content=axe_source)
    result = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 3)}))"
    )
    assert isinstance(result, list)
    return [v for v in result if v["impact"] in ("serious", "critical")]


def test_main_screens_pass_axe_and_are_captured(
    browser: Browser, user: WebUser, gateway_url: str, axe_source: str, stack: DevStack
) -> None:
    token = urlsplit(mail_link(stack, user.email, "/verify-email")).query.removeprefix("token=")
    user.client.post("/auth/verify-email", json={"token": token}).raise_for_status()
    board = user.default_board()
    columns = board["columns"]
    assert isinstance(columns, list)
    todo, doing, done = (c["id"] for c in columns[:3])
    user.api("PATCH", f"/api/columns/{doing}", json={"wip_limit": 3})
    cards = [
        (todo, "Draft the launch post", ["marketing"], "2031-05-02T12:00:00Z", []),
        (todo, "Invite beta testers", ["community"], None, []),
        (
            doing,
            "Polish onboarding",
            ["design", "web"],
            "2031-04-28T12:00:00Z",
            [{"text": "Empty states", "done": True}, {"text": "Tooltips", "done": False}],
        ),
        (doing, "Fix login on Safari", ["bug"], None, []),
        (done, "Set up CI", ["infra"], None, []),
    ]
    for column_id, title, labels, due, checklist in cards:
        user.api(
            "POST",
            "/api/tasks",
            json={
                "title": title,
                "board_id": board["id"],
                "column_id": column_id,
                "labels": labels,
                "due_at": due,
                "checklist": checklist,
            },
        )
    # axe is injected as a script of its own: the app's CSP ('self' only) would refuse it.
    context = user.logged_in_context(browser, gateway_url, bypass_csp=True)
    page = context.new_page()
    problems = watch_console(page)
    page.goto(gateway_url + "/")
    expect(card(page, "Polish onboarding")).to_be_visible()
    expect(page.get_by_text("Live", exact=True)).to_be_visible()
    screens: dict[str, list[dict[str, object]]] = {}
    page.set_viewport_size({"width": 1440, "height": 760})
    page.screenshot(path=ARTIFACTS / "board.png")
    if os.environ.get("TASKGATE_README_SCREENSHOT"):
        README_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=README_IMAGE)
    screens["board"] = _axe_violations(page, axe_source)

    page.get_by_role("button", name="Polish onboarding", exact=True).click()
    expect(page.get_by_role("dialog", name="Edit card")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "card-editor.png")
    screens["card editor"] = _axe_violations(page, axe_source)
    page.keyboard.press("Escape")

    page.get_by_role("link", name="Devices").click()
    expect(page.get_by_role("heading", name="Devices")).to_be_visible()
    screens["devices"] = _axe_violations(page, axe_source)

    page.set_viewport_size({"width": 390, "height": 844})
    page.get_by_role("link", name="Boards").click()
    expect(card(page, "Polish onboarding")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "board-phone.png", full_page=True)
    screens["board (phone width)"] = _axe_violations(page, axe_source)

    guest = browser.new_context(viewport=DESKTOP, bypass_csp=True)
    login = guest.new_page()
    login.goto(gateway_url + "/login")
    expect(login.get_by_role("heading", name="Log in")).to_be_visible()
    screens["login"] = _axe_violations(login, axe_source)
    login.get_by_role("link", name="Create an account").click()
    expect(login.get_by_role("heading", name="Create your account")).to_be_visible()
    screens["register"] = _axe_violations(login, axe_source)

    serious = {name: found for name, found in screens.items() if found}
    assert serious == {}, json.dumps(serious, indent=2)
    assert problems == [], f"console errors: {problems}"
    context.close()
    guest.close()


def test_the_gateway_serves_the_app_with_a_strict_policy_and_keeps_json_404s(
    sync_gateway: httpx.Client,
) -> None:
    page = sync_gateway.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "http" not in policy  # nothing from another origin
    assert page.headers["x-content-type-options"] == "nosniff"
    assert re.search(r'src="/js/main\.js"', page.text)
    for path in ("/verify-email", "/reset-password", "/boards/" + str(uuid.uuid4())):
        assert sync_gateway.get(path, params={"token": "x"}).text == page.text
    for path in (
        "/nowhere",
        "/js/missing.js",
        "/.env",
        "/metrics",
        "/health/ready",
        "/revocations",
    ):
        response = sync_gateway.get(path)
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found", path
    assert sync_gateway.post("/").status_code in (404, 405)


@pytest.fixture(autouse=True)
def _no_leftover_pages(browser: Browser) -> Iterator[None]:
    yield
    for context in browser.contexts:
        context.close()
