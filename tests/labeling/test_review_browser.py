"""A real reviewer session: the review server driven by Playwright in Debian's Chromium."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from assets.labeling import labeling_batch, reviewed_examples
from assets.resources import FlywheelResource
from flywheel.core.storage import FlywheelHome
from flywheel.labeling.decisions import record_decision
from flywheel.labeling.server import ReviewServer
from flywheel.labeling.store import ReviewStore
from tests.labeling.traffic import WEEK, traffic, write_week

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
FIX = "<img src=x onerror=alert(1)> Go to Reports > Export and pick CSV."

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (make chromium)"),
]


def test_reviewer_session_in_chromium(home: FlywheelHome, project_dir: Path, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    write_week(home, traffic())
    db = f"sqlite:///{tmp_path / 'review.db'}"
    resources = {"flywheel": FlywheelResource(project_dir=str(project_dir), home_dir=str(home.root), database_url=db)}
    assert dg.materialize([labeling_batch], partition_key=WEEK, resources=resources).success
    store = ReviewStore(db)
    items = store.items(WEEK)
    n = len(items)

    server = ReviewServer(store, WEEK).start()
    dialogs: list[str] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 950})
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(server.url)
            # asked once for a name
            expect(page.locator("#name-dialog")).to_be_visible()
            page.fill("#name-input", "ann")
            page.press("#name-input", "Enter")
            expect(page.locator("#item-pos")).to_have_text("1")
            expect(page.locator("#progress-text")).to_have_text(f"0 of {n} decided")
            expect(page.locator("#output")).to_have_text(items[0]["output"])
            expect(page.locator("#correction")).to_have_text(items[0]["correction_text"])

            page.keyboard.press("p")  # pass item 1
            expect(page.locator("#item-pos")).to_have_text("2")
            page.keyboard.press("f")  # fix item 2: prefilled with the user's correction
            expect(page.locator("#fix-text")).to_have_value(items[1]["correction_text"])
            page.fill("#fix-text", FIX)
            page.keyboard.press("Control+Enter")
            expect(page.locator("#item-pos")).to_have_text("3")
            page.keyboard.press("r")  # reject item 3 with a reason
            page.fill("#reject-reason", "asks about another product")
            page.keyboard.press("Enter")
            expect(page.locator("#item-pos")).to_have_text("4")
            expect(page.locator("#progress-text")).to_have_text(f"3 of {n} decided")

            page.keyboard.press("k")
            page.keyboard.press("ArrowLeft")  # back on the fixed item: its verdict and text, as text
            expect(page.locator("#item-pos")).to_have_text("2")
            expect(page.locator("#verdict-banner")).to_contain_text("Fixed")
            expect(page.locator("#my-fix")).to_have_text(FIX)  # the edited HTML shown as text
            page.keyboard.press("?")
            expect(page.locator("#help")).to_be_visible()
            page.screenshot(path=str(tmp_path / "help.png"))
            page.keyboard.press("Escape")
            expect(page.locator("#help")).to_be_hidden()

            # a second sitting resumes at the first undecided item, name remembered
            page.reload()
            expect(page.locator("#reviewer-name")).to_have_text("ann")
            expect(page.locator("#item-pos")).to_have_text("4")
            page.screenshot(path=str(tmp_path / "review.png"), full_page=True)

            # a second reviewer at the same time (own browser profile): starts at the first item nobody
            # decided, and after each verdict moves to the next one nobody decided
            bob = browser.new_context(viewport={"width": 1000, "height": 800}).new_page()
            bob.goto(server.url)
            bob.fill("#name-input", "bob")
            bob.press("#name-input", "Enter")
            expect(bob.locator("#item-pos")).to_have_text("4")
            page.keyboard.press("p")  # meanwhile ann decides items 4 and 5
            expect(page.locator("#item-pos")).to_have_text("5")
            page.keyboard.press("p")
            expect(page.locator("#item-pos")).to_have_text("6")
            bob.keyboard.press("p")  # bob's verdict on item 4 ...
            expect(bob.locator("#item-pos")).to_have_text("6")  # ... then past item 5, which ann decided
            # the rest of the batch decided elsewhere; ann's next sitting finishes it: the done view
            for it in items[5:-1]:
                record_decision(store, WEEK, it["item_id"], "carl", "pass")
            page.reload()
            expect(page.locator("#item-pos")).to_have_text(str(n))
            page.keyboard.press("p")
            expect(page.locator("#done-card")).to_be_visible()
            expect(page.locator("#done-summary")).to_contain_text(
                f"Every one of the {n} items has a decision. Yours: 6 (4 passed, 1 fixed, 1 rejected)")
            expect(page.locator("#progress-text")).to_have_text(f"{n} of {n} decided")
            page.keyboard.press("k")  # back to the items
            expect(page.locator("#item-view")).to_be_visible()
            browser.close()
    finally:
        server.stop()
    shutil.copy(tmp_path / "review.png", "/tmp/flywheel-review-page.png")
    assert dialogs == []  # the edited HTML never ran

    decided = {d.item_id: d for d in store.decisions(WEEK, reviewer="ann")}
    assert {k: d.verdict for k, d in decided.items()} == {
        items[0]["item_id"]: "pass", items[1]["item_id"]: "fix", items[2]["item_id"]: "reject",
        **{it["item_id"]: "pass" for it in (items[3], items[4], items[-1])}}
    assert decided[items[1]["item_id"]].text == FIX
    assert decided[items[2]["item_id"]].reason == "asks about another product"
    assert [d.item_id for d in store.decisions(WEEK, reviewer="bob")] == [items[3]["item_id"]]
    progress = store.progress(WEEK)
    assert progress.complete and not progress.closed and progress.decisions == n + 1

    result = dg.materialize([labeling_batch, reviewed_examples], partition_key=WEEK, resources=resources,
                            selection=[reviewed_examples])
    assert result.success
    rows = pq.read_table(home.warehouse("reviewed_examples", WEEK)).to_pylist()
    assert [r["messages"][-1]["content"] for r in rows[:2]] == [items[0]["output"], FIX]
    assert [r["human_fixed"] for r in rows[:3]] == [False, True, False]
    assert len(rows) == n - 1  # item 3 rejected
    assert [json.loads(r["lineage"])["reviewer"] for r in rows[:3]] == ["ann", "ann", "bob"]
