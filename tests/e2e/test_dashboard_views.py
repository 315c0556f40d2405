"""The dashboard's views for comparing and building on runs, in a real headless Chromium: the
compare view (parameter differences, overlaid curves, a metric-vs-parameter scatter), sweeps
started from a network, prepare runs in the lineage tree, the submit form's field reference, and
the 1280 px rule: every page fits a 1280 px wide window without horizontal scrolling. A
screenshot of every page is written to ``test-output/page-*.png``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers.dashboard import SMALL_SOC, UUID, sign_in, wait_until

pytestmark = pytest.mark.e2e

WIDTH = 1280
QUICK_FIT = {  # a coarse fit of a small hennequin network: seconds
    "movements": {"directions_deg": [0, 180], "duration": 0.1},
    "dt": 0.002,
    "cost_tolerance": 0.5,
}
QUICK_PREPARE = {"controllers": ["lqr"], "spontaneous": 0.1, "preparation": 0.1, "delay": 0.0}


@pytest.fixture(scope="module")
def page(browser: Any, dashboard: Any) -> Iterator[Any]:
    """A page signed in as alice in a 1280 px wide window."""
    context = browser.new_context(viewport={"width": WIDTH, "height": 900})
    signed_in = context.new_page()
    sign_in(signed_in, dashboard.url, dashboard.tokens["alice"])
    yield signed_in
    context.close()


@pytest.fixture(scope="module")
def api(dashboard: Any) -> Iterator[httpx.Client]:
    with dashboard.api("alice") as client:
        yield client


@pytest.fixture(scope="module")
def two_socs(api: httpx.Client) -> list[str]:
    """Two finished small SOC jobs that differ only in their seed."""
    ids = [api.post("/jobs", json={**SMALL_SOC, "seed": seed}).json()["id"] for seed in (2, 3)]
    for job_id in ids:
        wait_until(api, job_id, "succeeded")
    return ids


def network_of(api: httpx.Client, job_id: str) -> str:
    [network_id] = api.get(f"/jobs/{job_id}").json()["network_ids"]
    return str(network_id)


def fits_the_width(page: Any) -> int:
    """The page's scroll width (px): at most the window's when nothing overflows sideways."""
    return int(page.evaluate("document.documentElement.scrollWidth"))


def test_compare_shows_only_the_differences_overlaid_curves_and_a_scatter(
    page: Any, dashboard: Any, two_socs: list[str], output_dir: Path
) -> None:
    page.goto(f"{dashboard.url}/ui/compare?ids={two_socs[0]}&ids={two_socs[1]}")
    differing = page.locator("#compare tr.differs th").all_inner_texts()
    assert "seed" in differing
    assert "n" not in differing and "method" not in differing  # the same in both: folded away
    assert "n" in page.locator("#same-parameters").inner_text()
    curve = page.locator("#overlay-abscissa")
    curve.wait_for(timeout=15_000)
    assert curve.get_attribute("data-lines") == "2"  # one line per job, on one chart
    assert curve.locator(".u-legend").inner_text().count(two_socs[0][:8]) == 1
    page.select_option("#scatter-y", "spectral_abscissa")
    page.select_option("#scatter-x", "seed")
    plot = page.locator("#scatter-plot")
    assert plot.get_attribute("data-points") == "2"
    assert "spectral_abscissa against seed" in plot.inner_text()
    page.screenshot(path=str(output_dir / "page-compare.png"), full_page=True)


def test_comparing_more_runs_than_the_limit_says_the_limit(
    page: Any, dashboard: Any, two_socs: list[str]
) -> None:
    ids = "&".join(f"ids={i:08d}-0000-0000-0000-000000000000" for i in range(21))
    answer = page.goto(f"{dashboard.url}/ui/compare?{ids}")
    assert answer.status == 422
    assert "at most 20 jobs; 21 were ticked" in page.locator("main").inner_text()


def test_a_sweep_starts_from_a_network_and_its_points_compare(
    page: Any, dashboard: Any, api: httpx.Client, two_socs: list[str], output_dir: Path
) -> None:
    network = network_of(api, two_socs[0])
    page.goto(f"{dashboard.url}/ui/networks")
    page.click(f"a[href='/ui/submit?network={network}&kind=fit&sweep=1']")
    definition = json.loads(page.locator("#spec").input_value())
    assert definition["spec"]["kind"] == "fit" and definition["spec"]["network"] == network
    assert definition["grid"] == {"seed": [0, 1, 2]}
    assert page.locator("#submit").inner_text() == "Submit sweep"
    assert "seed" in page.locator("#spec-fields").inner_text()  # the fit fields, to sweep over
    definition["spec"] |= QUICK_FIT
    definition["grid"] = {"seed": [0, 1]}
    page.fill("#spec", json.dumps(definition))
    page.click("#submit")
    page.wait_for_url(re.compile(rf"/ui/sweeps/{UUID}$"))
    sweep_id = page.url.rsplit("/", 1)[1]
    deadline = time.monotonic() + 120
    while api.get(f"/sweeps/{sweep_id}").json()["progress"]["finished"] < 2:
        assert time.monotonic() < deadline, "the sweep did not finish in 120 s"
        time.sleep(0.2)
    page.goto(f"{dashboard.url}/ui/sweeps/{sweep_id}")
    rows = page.locator("#points tbody tr")
    assert rows.count() == 2
    assert page.locator("#points .s-succeeded").count() == 2
    assert "cost" in page.locator("#points thead").inner_text()  # the points' metrics
    page.screenshot(path=str(output_dir / "page-sweep.png"), full_page=True)
    page.click("#compare-sweep")
    page.wait_for_url(re.compile(r"/ui/compare\?"))
    assert page.locator("#compare tr.differs th").all_inner_texts()[0] == "seed"
    page.goto(f"{dashboard.url}/ui/sweeps")
    assert sweep_id[:8] in page.locator("#sweeps").inner_text()


def test_prepare_runs_hang_under_their_network_in_the_lineage(
    page: Any, dashboard: Any, api: httpx.Client, two_socs: list[str]
) -> None:
    soc_network = network_of(api, two_socs[1])
    fit = api.post("/jobs", json={"kind": "fit", "network": soc_network, **QUICK_FIT}).json()
    wait_until(api, fit["id"], "succeeded", timeout=120)
    fitted = network_of(api, fit["id"])
    spec = {"kind": "prepare", "network": fitted, **QUICK_PREPARE}
    prepare = api.post("/jobs", json=spec).json()["id"]
    wait_until(api, prepare, "succeeded", timeout=120)
    page.goto(f"{dashboard.url}/ui/networks")
    fitted_node = page.locator(
        "#lineage li", has=page.locator(f"> .node a[href='/ui/submit?network={fitted}&kind=fit']")
    )
    run = fitted_node.locator("> ul.tree > li > .node.run")
    assert run.count() == 1
    assert prepare[:8] in run.inner_text() and "lqr" in run.inner_text()
    # and the fit hangs under the SOC network it started from
    soc_node = page.locator(
        "#lineage li",
        has=page.locator(f"> .node a[href='/ui/submit?network={soc_network}&kind=fit']"),
    )
    assert fitted[:8] in soc_node.inner_text()


def test_the_submit_form_lists_the_fields_of_the_chosen_kind(page: Any, dashboard: Any) -> None:
    page.goto(f"{dashboard.url}/ui/submit?example=prepare")
    assert page.title() == "Submit · lifrnn"  # the table is in the page, not in its title
    assert page.locator("#spec-fields").count() == 1
    fields = page.locator("#spec-fields")
    assert "prepare" in fields.locator("summary").inner_text()
    text = fields.inner_text()
    assert "controllers" in text and "time to reach x*, seconds" in text
    page.goto(f"{dashboard.url}/ui/submit?example=soc")
    assert "target_abscissa" in page.locator("#spec-fields").inner_text()


def test_every_page_fits_1280_px_without_scrolling_sideways(
    browser: Any,
    page: Any,
    dashboard: Any,
    api: httpx.Client,
    two_socs: list[str],
    output_dir: Path,
) -> None:
    """Each page at 1280 px: nothing wider than the window; a screenshot of each."""
    job = two_socs[0]
    fit = api.get("/jobs", params={"kind": "fit", "limit": 1}).json()["items"]
    prepare = api.get("/jobs", params={"kind": "prepare", "limit": 1}).json()["items"]
    sweeps = api.get("/sweeps", params={"limit": 1}).json()["items"]
    pages = {
        "queue": "/ui/jobs",
        "job-soc": f"/ui/jobs/{job}",
        "submit": "/ui/submit?example=fit",
        "networks": "/ui/networks",
        "compare": f"/ui/compare?ids={two_socs[0]}&ids={two_socs[1]}",
        "sweeps": "/ui/sweeps",
        "not-found": "/ui/jobs/00000000-0000-0000-0000-000000000000",
    }
    if fit:
        pages["job-fit"] = f"/ui/jobs/{fit[0]['id']}"
    if prepare:
        pages["job-prepare"] = f"/ui/jobs/{prepare[0]['id']}"
    if sweeps:
        pages["sweep"] = f"/ui/sweeps/{sweeps[0]['id']}"
    too_wide = {}
    for name, path in pages.items():
        page.goto(f"{dashboard.url}{path}")
        page.wait_for_load_state("load")
        if name == "compare":
            page.locator("#overlay-abscissa").wait_for(timeout=15_000)
        if fits_the_width(page) > WIDTH:
            too_wide[name] = fits_the_width(page)
        page.screenshot(path=str(output_dir / f"page-{name}.png"), full_page=True)
    context = browser.new_context(viewport={"width": WIDTH, "height": 900})
    visitor = context.new_page()
    visitor.goto(f"{dashboard.url}/ui/login")
    if fits_the_width(visitor) > WIDTH:
        too_wide["login"] = fits_the_width(visitor)
    visitor.screenshot(path=str(output_dir / "page-login.png"), full_page=True)
    context.close()
    assert not too_wide, f"pages wider than {WIDTH} px: {too_wide}"
