"""A real reviewer session: the review server driven by Playwright in Debian's Chromium."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest
from test_labeling import WEEK, traffic, write_week

from assets.labeling import labeling_batch, reviewed_examples
from assets.resources import FlywheelResource
from flywheel.review_server import ReviewServer
from flywheel.review_store import ReviewStore
from flywheel.storage import FlywheelHome

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
            expect(page.locator("#verdict-banner")).to_contain_text("<img src=x onerror=alert(1)>")
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
            browser.close()
    finally:
        server.stop()
    shutil.copy(tmp_path / "review.png", "/tmp/flywheel-review-page.png")
    assert dialogs == []  # the edited HTML never ran

    decided = {d.item_id: d for d in store.decisions(WEEK)}
    assert {k: (d.reviewer, d.verdict) for k, d in decided.items()} == {
        items[0]["item_id"]: ("ann", "pass"), items[1]["item_id"]: ("ann", "fix"), items[2]["item_id"]: ("ann", "reject")}
    assert decided[items[1]["item_id"]].text == FIX
    assert decided[items[2]["item_id"]].reason == "asks about another product"

    store.close_batch(WEEK)
    result = dg.materialize([labeling_batch, reviewed_examples], partition_key=WEEK, resources=resources,
                            selection=[reviewed_examples])
    assert result.success
    rows = pq.read_table(home.warehouse("reviewed_examples", WEEK)).to_pylist()
    assert [r["messages"][-1]["content"] for r in rows] == [items[0]["output"], FIX]
    assert [r["human_fixed"] for r in rows] == [False, True]
    assert {json.loads(r["lineage"])["reviewer"] for r in rows} == {"ann"}
