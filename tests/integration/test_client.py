"""The Python client against a real ``lifrnn serve`` (SQLite): submit, wait, chain, download,
load, list, cancel, and the service's errors as specific exceptions with its message."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import torch
from helpers.services import (
    LONG,
    PNG,
    SMALL,
    ClientService,
    free_port,
    shared_client_service,
)

from lifrnn.client import (
    Client,
    ConnectionFailedError,
    InvalidSpec,
    JobCancelled,
    JobFailed,
    NotFound,
    QuotaExceeded,
    Unauthorized,
    fit,
    prepare,
    soc,
)
from lifrnn_core.dynamics import readout, simulate


@pytest.fixture(scope="module")
def client_service(request: pytest.FixtureRequest) -> ClientService:
    return shared_client_service(request)


@pytest.fixture(scope="module")
def alice(client_service: ClientService):
    with client_service.client("alice") as client:
        yield client


@pytest.fixture(scope="module")
def built(alice: Client):
    """A small kao2021 network (soc job, succeeded)."""
    return alice.submit(soc(method="kao2021", n=40)).wait(timeout=120, progress=False)


@pytest.fixture(scope="module")
def fitted(alice: Client, built):
    """Two reaches fitted on ``built``, the soc job passed as the parent."""
    spec = fit(network=built, directions_deg=[0, 180], duration=0.2, dt=0.002)
    return alice.submit(spec).wait(timeout=120, progress=False)


def test_a_submitted_job_is_waited_for_and_reports_its_metrics(alice: Client):
    job = alice.submit(SMALL)
    assert job.status in {"queued", "running", "succeeded"}
    assert job.wait(timeout=120, progress=True) is job
    assert job.status == "succeeded" and job.progress == 1.0
    assert job.metrics["converged"] is True and job.metrics["spectral_abscissa"] <= 0.15
    assert {"network.safetensors", "soc.png", "spec.json"} <= set(job.artifacts)


def test_a_job_passed_as_network_is_the_parent_of_the_next(alice: Client, built, fitted):
    [parent_id] = built.network_ids
    assert fitted.spec["network"] == {"job": built.id}
    [child_id] = fitted.network_ids
    child = alice.network(child_id)
    assert child.parent_network_id == parent_id
    assert [ancestor.id for ancestor in child.lineage] == [parent_id]
    assert child.job().id == fitted.id


def test_the_network_loads_as_torch_tensors_ready_to_simulate(fitted):
    network = fitted.network()
    assert network.W.dtype == torch.float64 and network.W.shape == (40, 40)
    assert network.x_star.shape == (2, 40)
    steps = round(network.meta("duration") / network.meta("dt"))
    states = simulate(
        network.W,
        network.x_star,
        tau=network.meta("tau"),
        dt=network.meta("dt"),
        steps=steps,
        h=network.h,
        gain=network.meta("gain"),
    )
    outputs = readout(states, network.C, network.n_excitatory, network.meta("gain"))
    assert torch.isfinite(outputs).all() and outputs.shape[0] == 2 and outputs.shape[-1] == 2


def test_artifacts_and_figures_download(fitted, tmp_path: Path):
    path = fitted.download("network.safetensors", tmp_path)
    assert path == tmp_path / "network.safetensors" and path.stat().st_size > 0
    assert [figure.name for figure in fitted.figures()] == ["fit.png"]
    [png] = fitted.figures(tmp_path / "figures")
    assert png.read_bytes().startswith(PNG)
    with pytest.raises(NotFound, match=r"no artifact 'missing\.png'.*fit\.png"):
        fitted.download("missing.png", tmp_path)


def test_listings_filter_and_count(alice: Client, built, fitted):
    fits = alice.jobs(kind="fit", status="succeeded", since=timedelta(hours=1))
    assert fitted.id in [job.id for job in fits] and fits.total >= 1
    assert all(job.kind == "fit" for job in fits)
    assert alice.jobs(kind="soc", metric="spectral_abscissa>1000").total == 0
    one = alice.jobs(limit=1)
    assert len(one) == 1 and one.total >= 2
    networks = alice.networks(kind="fit", n=40)
    assert fitted.network_ids[0] in [network.id for network in networks]
    rows = networks.rows()
    assert rows[0]["n"] == 40 and "r2_min" in rows[0]


def test_listings_become_dataframes_when_pandas_is_installed(alice: Client, fitted):
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"lifrnn\[pandas\]"):
            alice.jobs(kind="fit").to_dataframe()
        return
    frame = alice.jobs(kind="fit").to_dataframe()
    assert fitted.id in frame.index and "r2_min" in frame.columns


def test_a_spec_already_run_is_reused_and_its_network_equals_a_fresh_runs(alice: Client, built):
    again = alice.submit(soc(method="kao2021", n=40))  # the client asks for reuse by default
    assert again.reused and again.id == built.id and again.status == "succeeded"
    fresh = alice.submit(soc(method="kao2021", n=40), reuse=False)
    assert not fresh.reused and fresh.id != built.id
    fresh.wait(timeout=120, progress=False)
    network = "network.safetensors"
    assert fresh.artifacts[network].sha256 == built.artifacts[network].sha256  # the same bytes
    other = alice.submit(soc(method="kao2021", n=40, seed=1))  # another spec: a new run
    assert not other.reused and other.id not in (built.id, fresh.id)
    other.cancel()


def test_a_cancelled_job_raises_job_cancelled(alice: Client):
    job = alice.submit(LONG)
    job.cancel()
    assert job.status in {"cancelling", "cancelled"}
    with pytest.raises(JobCancelled) as raised:
        job.wait(timeout=60, progress=False)
    assert raised.value.job.status == "cancelled" and raised.value.reason


def test_a_failed_job_raises_job_failed_with_the_reason(alice: Client):
    job = alice.submit(soc(n=40, radius=4, max_iterations=2))
    with pytest.raises(JobFailed, match="did not converge") as raised:
        job.wait(timeout=60, progress=False)
    assert "max_iterations" in raised.value.reason


def test_a_chain_is_submitted_at_once_and_runs_in_order(alice: Client):
    network = alice.submit(soc(method="kao2021", n=40, seed=0), reuse=False)  # ran as `built`
    reaches = alice.submit(fit(network=network, directions_deg=[0, 180], duration=0.2, dt=0.002))
    trial = alice.submit(
        prepare(network=reaches, controllers=["lqr"], spontaneous=0.1, preparation=0.2, delay=0.1)
    )
    assert reaches.status == "waiting" and trial.status == "waiting"  # nothing blocked here
    assert trial.wait(timeout=180, progress=False).status == "succeeded"
    assert reaches.refresh().status == "succeeded"
    [fitted_network] = reaches.network_ids
    assert trial.data["parent_network_id"] == fitted_network
    assert alice.network(fitted_network).parent_network_id == network.refresh().network_ids[0]


def test_local_files_and_arrays_are_uploaded_and_named_by_id(alice: Client, tmp_path: Path):
    import numpy as np

    from lifrnn_core.soc import SOCParameters, initial_weights

    params = SOCParameters.for_method("hennequin2014", n=40, radius=4.0)
    W = initial_weights(params, np.random.default_rng(0))
    np.save(tmp_path / "W.npy", W)
    from_path = alice.submit(soc(n=40, radius=4, initial_weights=tmp_path / "W.npy"))
    from_array = alice.submit(soc(n=40, radius=4, initial_weights=W))
    for job in (from_path, from_array):
        assert job.wait(timeout=120, progress=False).status == "succeeded"
        stored = alice.file(job.spec["initial_weights"])
        assert stored.shape == [40, 40] and stored.format == "npy"
        assert np.array_equal(job.network().W.numpy()[:, :20], W[:, :20])
    uploaded = alice.upload(tmp_path / "W.npy")
    assert uploaded.sha256 == alice.file(from_path.spec["initial_weights"]).sha256
    assert uploaded.id in [f.id for f in alice.files(limit=1000)]
    assert (
        uploaded.download(tmp_path / "back.npy").read_bytes() == (tmp_path / "W.npy").read_bytes()
    )
    uploaded.delete()
    with pytest.raises(NotFound):
        alice.file(uploaded.id)


def test_a_repeated_idempotency_key_returns_the_same_job(alice: Client):
    first = alice.submit({**SMALL, "seed": 7}, idempotency_key="client-test-7")
    again = alice.submit({**SMALL, "seed": 7}, idempotency_key="client-test-7")
    assert again.id == first.id


def test_a_bad_token_is_unauthorized_with_the_servers_message(client_service: ClientService):
    with (
        Client(client_service.url, token="not-a-token") as stranger,
        pytest.raises(Unauthorized) as e,
    ):
        stranger.jobs()
    assert e.value.status_code == 401 and e.value.detail == "unknown API token"


def test_an_unknown_id_is_not_found(alice: Client):
    with pytest.raises(NotFound, match="no job 00000000-0000-0000-0000-000000000000"):
        alice.job("00000000-0000-0000-0000-000000000000")
    with pytest.raises(NotFound, match="no network"):
        alice.network("00000000-0000-0000-0000-000000000000")


def test_an_invalid_spec_names_the_field(alice: Client):
    with pytest.raises(InvalidSpec) as raised:
        alice.submit({"kind": "soc", "n": 3, "p": 2})
    assert raised.value.status_code == 422
    assert raised.value.fields == {
        "n": "Input should be greater than or equal to 10",
        "p": "Input should be less than or equal to 1",
    }
    assert "invalid spec: n:" in str(raised.value)


def test_over_quota_is_quota_exceeded(client_service: ClientService):
    with client_service.client("quota") as client:
        client.submit(SMALL)  # stays queued: this user may run nothing
        with pytest.raises(QuotaExceeded, match="queued") as raised:
            client.submit({**SMALL, "seed": 1})
    assert raised.value.status_code == 429


def test_defaults_come_from_the_environment(client_service: ClientService, monkeypatch):
    monkeypatch.setenv("LIFRNN_URL", client_service.url)
    monkeypatch.setenv("LIFRNN_TOKEN", client_service.tokens["alice"])
    with Client() as client:
        assert client.url == client_service.url and client.jobs(limit=1).total >= 0
    monkeypatch.delenv("LIFRNN_TOKEN")
    monkeypatch.setenv("LIFRNN_HOME", str(client_service.server.home))
    with Client() as client:  # the local server's token file
        assert client.token == client_service.tokens["local"]
        assert client.jobs(all_users=True).total >= 1


def test_connection_errors_are_retried_then_reported(monkeypatch):
    monkeypatch.setattr("lifrnn.client.connection.time.sleep", lambda seconds: None)
    calls = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) < 3:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json={"status": "ok"})

    with Client("http://lifrnn.invalid", "t", transport=httpx.MockTransport(flaky)) as client:
        assert client.health() == {"status": "ok"}
    assert len(calls) == 3

    answers = [httpx.Response(503, json={"detail": "busy"}, headers={"Retry-After": "1"})] * 2
    answers.append(httpx.Response(200, json={"items": [], "total": 0}))
    busy = httpx.MockTransport(lambda request: answers.pop(0))
    with Client("http://lifrnn.invalid", "t", transport=busy) as client:
        assert client.jobs().total == 0 and not answers

    nowhere = f"http://127.0.0.1:{free_port()}"
    with Client(nowhere, "t", retries=1) as client, pytest.raises(ConnectionFailedError) as e:
        client.jobs()
    assert nowhere in str(e.value) and "lifrnn serve" in str(e.value)


def test_a_submission_without_key_is_not_resent_after_it_may_have_arrived(monkeypatch):
    monkeypatch.setattr("lifrnn.client.connection.time.sleep", lambda seconds: None)
    calls = []

    def lost_answer(request: httpx.Request) -> httpx.Response:
        calls.append(request.headers.get("Idempotency-Key"))
        raise httpx.ReadTimeout("no answer", request=request)

    with Client("http://lifrnn.invalid", "t", transport=httpx.MockTransport(lost_answer)) as c:
        with pytest.raises(ConnectionFailedError):
            c.submit(SMALL)
        assert calls == [None]
        with pytest.raises(ConnectionFailedError):
            c.submit(SMALL, idempotency_key="k")  # safe to resend: the server deduplicates
    assert calls[1:] == ["k"] * 4


def test_builders_validate_before_sending():
    with pytest.raises(ValueError, match=r"movements\.duration \(0\.205 s\) must be a whole"):
        fit(duration=0.205, dt=0.01)
