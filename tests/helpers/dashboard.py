"""What the browser tests share: a small SOC spec, the shape of a job id, signing in through the
dashboard's form in Chromium, and waiting for a job through the API."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx

SMALL_SOC = {"kind": "soc", "n": 40, "radius": 4}


UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def sign_in(page: Any, url: str, token: str) -> None:
    """Sign in through the form; lands on the queue."""
    page.goto(f"{url}/ui/login")
    page.fill("#token", token)
    page.click("button[type=submit] >> text=Sign in")
    page.wait_for_url(re.compile(r"/ui/jobs$"))


def wait_until(api: httpx.Client, job_id: str, wanted: str, timeout: float = 60) -> None:
    """Poll the API until the job has status ``wanted``."""
    deadline = time.monotonic() + timeout
    while api.get(f"/jobs/{job_id}").json()["status"] != wanted:
        assert time.monotonic() < deadline, f"job {job_id} not {wanted} after {timeout} s"
        time.sleep(0.1)
