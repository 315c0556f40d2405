"""Speed of lifrnn's spiking simulation against Brian2 on the same network, side by side.

Run on demand: ``python bench/spiking.py [--conditions 16] [--pools 200] [--pool-size 10]
[--seconds 1] [--threads 2] [--cython]``. Issue 29's size: a kao2021 SOC network of 200 units
(seed 0) with reaches fitted on it, mapped to pools of K = 10 LIF neurons (membrane noise 3 mV),
16 conditions started at their x*, 1 s at dt = 0.1 ms: 32,000 neurons, 10,000 steps.

Times ``lifrnn_core.spiking.simulate_spiking`` (float64 and float32, one call each after a short
warm-up) and the same network in Brian2 (``tests/helpers/brian2_peer.py``: its numpy target, and
with ``--cython`` its Cython target where a compiler builds it), both with all conditions in one
run, and prints seconds per simulated second, spikes, mean rates and the ratio Brian2 / lifrnn.
Brian2's timing excludes building the network and generating code. Goal (issue 29): lifrnn at
least 5x Brian2's numpy target on 2 cores.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from helpers.brian2_peer import brian2_simulate  # noqa: E402
from helpers.networks import kao2021, reaches  # noqa: E402

from lifrnn_core.spiking import simulate_spiking, spiking_network  # noqa: E402

logger = logging.getLogger("bench.spiking")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conditions", type=int, default=16)
    parser.add_argument("--pools", type=int, default=200)
    parser.add_argument("--pool-size", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cython", action="store_true", help="also time Brian2's Cython target")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    dt = 1e-4
    steps = round(args.seconds / dt)
    W, n_e = kao2021(args.pools)
    fitted = reaches(W, n_e, conditions=args.conditions)
    neurons = args.conditions * args.pools * args.pool_size
    logger.info(
        "%d conditions x %d pools x K = %d (%d neurons), %g s at dt = 0.1 ms, %d threads",
        args.conditions,
        args.pools,
        args.pool_size,
        neurons,
        args.seconds,
        args.threads,
    )
    rows: list[tuple[str, float, int]] = []
    for dtype in (torch.float64, torch.float32):
        network = spiking_network(
            W.to(dtype), fitted.h, fitted.x_sp, tau=0.15, pool_size=args.pool_size, noise=3.0
        )
        generator = torch.Generator().manual_seed(0)
        simulate_spiking(network, fitted.x_star, steps=50, generator=generator)  # warm-up
        started = time.perf_counter()
        run = simulate_spiking(network, fitted.x_star, steps=steps, generator=generator)
        rows.append(
            (
                f"lifrnn {str(dtype).removeprefix('torch.')}",
                time.perf_counter() - started,
                len(run.spikes),
            )
        )
    network = spiking_network(
        W, fitted.h, fitted.x_sp, tau=0.15, pool_size=args.pool_size, noise=3.0
    )
    lif = network.lif
    v0 = lif.reset + (lif.threshold - lif.reset) * np.random.default_rng(0).random(
        (args.conditions, args.pools * args.pool_size)
    )
    targets = ["numpy"] + (["cython"] if args.cython else [])
    for target in targets:
        try:
            peer = brian2_simulate(network, fitted.x_star.numpy(), v0, steps=steps, target=target)
        except Exception as error:
            logger.info("brian2 %s: did not run (%s)", target, error)
            continue
        rows.append((f"brian2 {target}", peer.run_seconds, len(peer.spikes)))
    baseline = next((seconds for name, seconds, _ in rows if name == "brian2 numpy"), None)
    logger.info(
        "%-16s %12s %10s %10s %18s",
        "simulator",
        "s per sim s",
        "spikes",
        "rate Hz",
        "brian2 numpy / it",
    )
    for name, seconds, spikes in rows:
        ratio = f"{baseline / seconds:.2f}x" if baseline else "-"
        logger.info(
            "%-16s %12.2f %10d %10.2f %18s",
            name,
            seconds / args.seconds,
            spikes,
            spikes / neurons / args.seconds,
            ratio,
        )


if __name__ == "__main__":
    main()
