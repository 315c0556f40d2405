"""The seed's two figures through the lifrnn service, cell by cell (Jupyter, VS Code: ``# %%``).

Figure 1: a kao2021 network fitted to two reaches (0° and 180°). Figure 2: the fitted network
retrained on novel reaches (new initial states vs. a reorganised network) and a sequence.
Start a service first (``lifrnn serve``); the client finds it through ``LIFRNN_URL`` and
``LIFRNN_TOKEN`` or the local token file. ``LIFRNN_EXAMPLE_QUICK=1`` runs small, fast settings.
Run as a script too: ``python lifrnn/examples/notebook_seed_figures.py`` (figures go to
``seed-figures/``). The chain is submitted at once: each job waits for its parent on the server.
"""

# %% Connect and choose the settings
import os
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from lifrnn.client import Client, fit, retrain, soc
from lifrnn_core.dynamics import readout, simulate

QUICK = os.environ.get("LIFRNN_EXAMPLE_QUICK") == "1"
OUT = Path("seed-figures")
client = Client()
print(client, client.health())

# %% Build the network and fit two reaches (figure 1)
network = client.submit(soc(method="kao2021", n=40 if QUICK else 200, seed=0))
short = {"duration": 0.2, "dt": 0.002} if QUICK else {}
reaches = client.submit(fit(network=network, directions_deg=[0, 180], **short))
print("R² per reach:", reaches.wait().metrics["r2"])

# %% Retrain on novel reaches and a sequence (figure 2)
novel = retrain(
    network=reaches,
    directions_deg=[60] if QUICK else [20, 60, 100, 140],
    sequence=[0, 60],
    **({"max_iterations": 5} if QUICK else {}),
)
retrained = client.submit(novel).wait()
print("comparison:", retrained.metrics["comparison"])

# %% Download the figures the jobs drew
figures = reaches.figures(OUT) + retrained.figures(OUT)
try:  # in a notebook, show them inline
    from IPython.display import Image, display

    for path in figures:
        display(Image(filename=str(path)))
except ImportError:
    print("figures:", *figures, sep="\n  ")

# %% Redraw the reaches from the downloaded tensors: simulate the fitted network from x*
tensors = reaches.network()
dt, tau, gain = tensors.meta("dt"), tensors.meta("tau"), tensors.meta("gain")
steps = round(tensors.meta("duration") / dt)
with torch.no_grad():
    states = simulate(
        tensors.W, tensors.x_star, tau=tau, dt=dt, steps=steps, h=tensors.h, gain=gain
    )
    velocity = readout(states, tensors.C, tensors.n_excitatory, gain).numpy()  # m/s
hand = velocity.cumsum(axis=1) * dt  # hand position relative to the start, metres
axes = plt.figure(figsize=(4, 4), layout="constrained").subplots()
for path, direction in zip(hand, tensors.meta("directions_deg"), strict=True):
    axes.plot(path[:, 0], path[:, 1], label=f"{direction:g}°")
extent = 1.2 * abs(hand).max()
axes.set(xlim=(-extent, extent), ylim=(-extent, extent), xlabel="x (m)", ylabel="y (m)")
axes.set_title("reaches re-simulated from network.safetensors")
axes.set_aspect("equal")
axes.legend()
OUT.mkdir(exist_ok=True)
plt.savefig(OUT / "reaches_redrawn.png", dpi=120)
print("redrawn:", OUT / "reaches_redrawn.png")
