"""The dashboard in a real headless Chromium: sign in, submit, watch, read, download, cancel.

The jobs are small SOC networks (a few seconds on a CPU); the long one is cancelled soon after it
starts. Screenshots of a finished job's page and of a running job's live curve are written to
``test-output/`` (``dashboard-job.png``, ``dashboard-live-curve.png``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers.dashboard import SMALL_SOC, UUID, sign_in, wait_until

pytestmark = pytest.mark.e2e

LONG_SOC = {"kind": "soc", "n": 200, "max_iterations": 100000}


def submit_from_form(page: Any, url: str, spec: dict[str, Any]) -> str:
    """Submit ``spec`` from the form (starting from the SOC example); the new job's id."""
    page.goto(f"{url}/ui/submit")
    page.select_option("#example", "soc")
    page.click("button:text('Load')")
    assert '"kind": "soc"' in page.locator("#spec").input_value()
    page.fill("#spec", json.dumps(spec))
    page.click("#submit")
    page.wait_for_url(re.compile(rf"/ui/jobs/{UUID}$"))
    return str(page.url.rsplit("/", 1)[1])


@pytest.fixture(scope="module")
def alice(browser: Any, dashboard: Any) -> Iterator[Any]:
    """A page signed in as alice (JavaScript on)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    page = context.new_page()
    sign_in(page, dashboard.url, dashboard.tokens["alice"])
    yield page
    context.close()


@pytest.fixture(scope="module")
def small_job(alice: Any, dashboard: Any) -> str:
    """The id of a small SOC job alice submitted from the form."""
    return submit_from_form(alice, dashboard.url, SMALL_SOC)


@pytest.fixture(scope="module")
def finished_job(alice: Any, dashboard: Any, small_job: str) -> str:
    """``small_job`` once its page shows it succeeded (live progress, then a reload)."""
    alice.goto(f"{dashboard.url}/ui/jobs/{small_job}")
    alice.wait_for_selector("#job-status .s-succeeded", timeout=60_000)
    alice.wait_for_selector("#metrics")  # rendered by the server after the reload at the end
    return small_job


def test_sign_in_keeps_a_session_not_the_token_in_an_http_only_strict_cookie(
    browser: Any, dashboard: Any
) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{dashboard.url}/ui/jobs")
    assert "/ui/login" in page.url  # signed out: sent to the sign-in page
    sign_in(page, dashboard.url, dashboard.tokens["alice"])
    assert page.url.endswith("/ui/jobs")
    assert page.locator("header .who").inner_text().startswith("alice")
    cookies = context.cookies()
    cookie = next(c for c in cookies if c["name"] == "lifrnn_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert all(dashboard.tokens["alice"] not in c["value"] for c in cookies)  # no API token kept
    assert page.evaluate("document.cookie") == ""  # nothing readable by scripts
    context.close()


def test_a_wrong_token_is_refused_on_the_sign_in_page(browser: Any, dashboard: Any) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{dashboard.url}/ui/login")
    page.fill("#token", "not-a-token")
    with page.expect_response(re.compile(r"/ui/login$")) as answer:
        page.click("button[type=submit] >> text=Sign in")
    assert answer.value.status == 401
    assert "unknown API token" in page.locator("[role=alert]").inner_text()
    context.close()


def test_a_job_submitted_from_the_form_finishes_on_its_page(
    alice: Any, dashboard: Any, finished_job: str, output_dir: Path
) -> None:
    assert alice.locator("#job-status").inner_text() == "succeeded"
    assert alice.locator("#job-progress").get_attribute("value") == "1.0"
    metrics = alice.locator("#metrics").inner_text()
    assert "spectral_abscissa" in metrics
    spec = json.loads(alice.locator("#spec").inner_text())
    assert (spec["kind"], spec["n"], spec["radius"]) == ("soc", 40, 4)
    figure = alice.locator(".figures img").first
    figure.scroll_into_view_if_needed()
    loaded = "(img) => img.complete && img.naturalWidth > 400"
    # drawn when first opened (docs/service.md): the first load waits for matplotlib
    alice.wait_for_function(loaded, arg=figure.element_handle(), timeout=60_000)
    alice.wait_for_selector("#curve-abscissa canvas")  # the abscissa per iteration (uPlot)
    with dashboard.api("alice") as api:
        iterations = api.get(f"/jobs/{finished_job}").json()["metrics"]["iterations"]
    assert alice.locator("#curves").get_attribute("data-points") == str(iterations)
    alice.screenshot(path=str(output_dir / "dashboard-job.png"), full_page=True)


def test_the_figure_opens_as_a_png(alice: Any, dashboard: Any, finished_job: str) -> None:
    href = alice.locator(".figures figure a").first.get_attribute("href")
    response = alice.request.get(f"{dashboard.url}{href}")
    assert response.status == 200
    assert response.headers["content-type"] == "image/png"
    assert response.body()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_network_downloads_with_the_stored_checksum(
    alice: Any, dashboard: Any, finished_job: str
) -> None:
    alice.goto(f"{dashboard.url}/ui/jobs/{finished_job}")
    with alice.expect_download() as started:
        alice.click("#artifacts a:text('network.safetensors')")
    download = started.value
    assert download.suggested_filename == "network.safetensors"
    body = Path(download.path()).read_bytes()
    with dashboard.api("alice") as api:
        stored = api.get(f"/jobs/{finished_job}").json()["artifacts"]
    expected = next(a["sha256"] for a in stored if a["name"] == "network.safetensors")
    assert hashlib.sha256(body).hexdigest() == expected


def test_an_invalid_spec_shows_the_apis_422_inline(
    alice: Any, dashboard: Any, output_dir: Path
) -> None:
    bad = {"kind": "soc", "n": 4}
    alice.goto(f"{dashboard.url}/ui/submit")
    alice.fill("#spec", json.dumps(bad))
    with alice.expect_response(re.compile(r"/ui/submit$")) as answer:
        alice.click("#submit")
    assert answer.value.status == 422
    with dashboard.api("alice") as api:
        from_api = api.post("/jobs", json=bad)
    assert from_api.status_code == 422
    assert alice.locator("#spec-error").inner_text() == from_api.json()["detail"]
    assert json.loads(alice.locator("#spec").input_value()) == bad  # kept for editing
    alice.screenshot(path=str(output_dir / "dashboard-submit-422.png"))


def test_a_long_job_is_cancelled_from_its_page(
    alice: Any, dashboard: Any, output_dir: Path
) -> None:
    job_id = submit_from_form(alice, dashboard.url, LONG_SOC)
    # live progress: the page follows the job from queued to running without a reload
    alice.wait_for_selector("#job-status .s-running", timeout=60_000)
    alice.locator("#job-message", has_text="SOC iteration").wait_for(timeout=30_000)
    # a live curve: the abscissa's points grow while the job runs, and the time shows
    alice.wait_for_selector("#curve-abscissa canvas", timeout=30_000)
    points = int(alice.locator("#curves").get_attribute("data-points") or 0)
    alice.wait_for_function(
        f"() => Number(document.querySelector('#curves').dataset.points) > {points}",
        timeout=30_000,
    )
    alice.locator("#job-timing", has_text="ran").wait_for(timeout=30_000)
    alice.screenshot(path=str(output_dir / "dashboard-live-curve.png"), full_page=True)
    alice.click("#cancel")
    alice.wait_for_selector("#job-status .s-cancelled", timeout=60_000)
    alice.locator("#cancel").wait_for(state="detached")  # the page reloaded: nothing to cancel
    with dashboard.api("alice") as api:
        assert api.get(f"/jobs/{job_id}").json()["status"] == "cancelled"


def test_another_users_job_is_not_reachable_by_url(alice: Any, dashboard: Any) -> None:
    with dashboard.api("bob") as api:
        bobs = api.post("/jobs", json={**SMALL_SOC, "seed": 7}).json()["id"]
    for path in (f"/ui/jobs/{bobs}", f"/ui/jobs/{bobs}/status.json", f"/ui/compare?ids={bobs}"):
        response = alice.goto(f"{dashboard.url}{path}")
        assert response.status == 404, path
    alice.goto(f"{dashboard.url}/ui/jobs")
    assert bobs[:8] not in alice.locator("#jobs").inner_text()


def test_an_admin_sees_everyones_jobs_and_the_load_per_user(
    browser: Any, dashboard: Any, finished_job: str
) -> None:
    with dashboard.api("bob") as api:
        bobs = api.post("/jobs", json={**SMALL_SOC, "seed": 3}).json()["id"]
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, dashboard.url, dashboard.tokens["local"])
    load = page.locator("#load").inner_text()
    assert "alice" in load and "bob" in load
    rows = page.locator("#jobs").inner_text()
    assert finished_job[:8] in rows and bobs[:8] in rows
    page.goto(f"{dashboard.url}/ui/jobs/{bobs}")
    assert "bob" in page.locator("table.kv").first.inner_text()
    page.goto(f"{dashboard.url}/ui/jobs?scope=mine")
    assert bobs[:8] not in page.locator("#jobs").inner_text()
    context.close()


def test_two_runs_compare_side_by_side(
    alice: Any, dashboard: Any, finished_job: str, output_dir: Path
) -> None:
    with dashboard.api("alice") as api:
        other = api.post("/jobs", json={**SMALL_SOC, "seed": 1}).json()["id"]
        wait_until(api, other, "succeeded")
    alice.goto(f"{dashboard.url}/ui/jobs")
    row = alice.locator("#jobs tbody tr", has=alice.locator(f"a[href='/ui/jobs/{other}']"))
    assert row.locator(".spec-summary").inner_text() == "hennequin2014 n=40 seed 1"
    assert re.fullmatch(r"α 0\.\d+ · \d+ it", row.locator(".key-metrics").inner_text())
    alice.check(f"input[name=ids][value='{finished_job}']")
    alice.check(f"input[name=ids][value='{other}']")
    alice.screenshot(path=str(output_dir / "dashboard-queue.png"))
    alice.click("button:text('Compare')")
    alice.wait_for_url(re.compile(r"/ui/compare\?"))
    header = alice.locator("#compare thead").inner_text()
    assert finished_job[:8] in header and other[:8] in header
    seed_row = alice.locator("#compare tr.differs", has_text="seed")
    assert seed_row.count() == 1
    assert alice.locator(".figures.side img").count() == 2
    alice.screenshot(path=str(output_dir / "dashboard-compare.png"), full_page=True)


def test_the_queue_searches_with_the_apis_filter_grammar(
    alice: Any, dashboard: Any, finished_job: str
) -> None:
    with dashboard.api("alice") as api:
        labelled = api.patch(
            f"/jobs/{finished_job}", json={"name": "searched", "tags": {"e2e": "search"}}
        )
        assert labelled.status_code == 200
        bad = api.get("/jobs", params={"filter": "params.n >> 3"}).json()["detail"]
    alice.goto(f"{dashboard.url}/ui/jobs")
    alice.fill("input[name=filter]", "tags.e2e = 'search' and params.n = 40")
    alice.fill("input[name=order_by]", "metrics.iterations desc")
    alice.click("button:text('Filter')")
    alice.wait_for_url(re.compile(r"/ui/jobs\?.*filter="))
    rows = alice.locator("#jobs tbody tr")
    assert rows.count() == 1
    assert finished_job[:8] in rows.inner_text() and "searched" in rows.inner_text()
    alice.fill("input[name=filter]", "params.n >> 3")
    alice.click("button:text('Filter')")
    assert alice.locator("#search-error").inner_text() == bad
    assert alice.locator("input[name=filter]").input_value() == "params.n >> 3"  # kept to edit
    alice.goto(f"{dashboard.url}/ui/jobs/{finished_job}")
    assert alice.locator("#run-name").inner_text() == "searched"
    assert alice.locator("#run-tags").inner_text().strip() == "e2e=search"


def test_the_networks_page_lists_the_trained_network(
    alice: Any, dashboard: Any, finished_job: str, output_dir: Path
) -> None:
    alice.goto(f"{dashboard.url}/ui/networks")
    alice.screenshot(path=str(output_dir / "dashboard-networks.png"))
    tree = alice.locator("#lineage").inner_text()
    assert finished_job[:8] in tree
    assert "n=40" in tree


def test_a_chain_is_built_from_the_networks_page_by_id(
    alice: Any, dashboard: Any, finished_job: str
) -> None:
    """'fit from it' fills the form with the network's id (not a server path); the fit it makes
    is then offered 'prepare it', whose job runs on the fitted network."""
    api = dashboard.api("alice")
    [network_id] = api.get(f"/jobs/{finished_job}").json()["network_ids"]
    alice.goto(f"{dashboard.url}/ui/networks")
    alice.click(f"a[href='/ui/submit?network={network_id}&kind=fit']")
    spec = json.loads(alice.locator("#spec").input_value())
    assert spec["kind"] == "fit" and spec["network"] == network_id
    spec |= {"movements": {"directions_deg": [0, 180], "duration": 0.1}, "dt": 0.002}
    spec |= {"cost_tolerance": 0.5}  # a coarse fit of a hennequin network: quick
    alice.fill("#spec", json.dumps(spec))
    alice.click("#submit")
    alice.wait_for_url(re.compile(rf"/ui/jobs/{UUID}$"))
    fit_job = alice.url.rsplit("/", 1)[1]
    # leave the live job page at once: it reloads itself when the job ends (dashboard.js), which
    # would interrupt a navigation started at that moment
    alice.goto("about:blank")
    wait_until(api, fit_job, "succeeded", timeout=120)
    [fitted] = api.get(f"/jobs/{fit_job}").json()["network_ids"]
    alice.goto(f"{dashboard.url}/ui/networks")
    alice.click(f"a[href='/ui/submit?network={fitted}&kind=prepare']")
    spec = json.loads(alice.locator("#spec").input_value())
    assert spec["kind"] == "prepare" and spec["network"] == fitted
    spec |= {"controllers": ["lqr"], "spontaneous": 0.1, "preparation": 0.1, "delay": 0.0}
    alice.fill("#spec", json.dumps(spec))
    alice.click("#submit")
    alice.wait_for_url(re.compile(rf"/ui/jobs/{UUID}$"))
    wait_until(api, alice.url.rsplit("/", 1)[1], "succeeded", timeout=120)


def test_reading_works_with_javascript_disabled(
    browser: Any, dashboard: Any, finished_job: str, output_dir: Path
) -> None:
    context = browser.new_context(
        java_script_enabled=False, viewport={"width": 1400, "height": 900}
    )
    page = context.new_page()
    sign_in(page, dashboard.url, dashboard.tokens["alice"])
    assert finished_job[:8] in page.locator("#jobs").inner_text()
    page.click(f"#jobs a:text('{finished_job[:8]}')")
    assert page.locator("#job-status").inner_text() == "succeeded"
    assert "spectral_abscissa" in page.locator("#metrics").inner_text()
    assert page.locator(".figures img").count() >= 1
    page.screenshot(path=str(output_dir / "dashboard-job-nojs.png"), full_page=True)
    context.close()


def test_a_form_without_the_sessions_csrf_token_is_refused(dashboard: Any) -> None:
    with httpx.Client(base_url=dashboard.url) as client:
        client.get("/ui/login")  # a signed-in session, as the form makes it
        signed_in = client.post(
            "/ui/login",
            data={"csrf": client.cookies["lifrnn_csrf"], "token": dashboard.tokens["alice"]},
        )
        assert signed_in.status_code == 303 and "lifrnn_session" in client.cookies
        csrf = client.cookies["lifrnn_csrf"]
        forged = client.post("/ui/submit", data={"csrf": "guessed", "spec": json.dumps(SMALL_SOC)})
        cross_site = client.post(
            "/ui/submit",
            data={"csrf": csrf, "spec": json.dumps(SMALL_SOC)},
            headers={"Origin": "https://evil.example"},
        )
    assert forged.status_code == 403
    assert cross_site.status_code == 403


def test_sign_out_ends_the_session_even_for_a_copied_cookie(browser: Any, dashboard: Any) -> None:
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, dashboard.url, dashboard.tokens["bob"])
    copied = context.cookies()
    page.click("header .who button")
    page.wait_for_url(re.compile(r"/ui/login"))
    assert not [c for c in context.cookies() if c["name"] == "lifrnn_session"]
    page.goto(f"{dashboard.url}/ui/jobs")
    assert "/ui/login" in page.url
    context.add_cookies(copied)  # the cookies as they were before signing out
    page.goto(f"{dashboard.url}/ui/jobs")
    assert "/ui/login" in page.url
    context.close()


def test_the_submit_form_loads_the_example_it_is_asked_for(alice: Any, dashboard: Any) -> None:
    alice.goto(f"{dashboard.url}/ui/submit?example=fit.json")
    assert json.loads(alice.locator("#spec").input_value())["kind"] == "fit"
    alice.goto(f"{dashboard.url}/ui/submit?example=nope")
    assert "no example named 'nope'" in alice.locator("#spec-error").inner_text()
    assert json.loads(alice.locator("#spec").input_value())["kind"] == "soc"
