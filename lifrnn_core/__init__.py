"""lifrnn_core: the science of lifrnn, as pure functions over torch, numpy and scipy.

Modules, one per concept: ``soc`` (stability-optimised E/I weights), ``gramians`` (Lyapunov
solvers, controllability/observability Gramians, amplifying directions), ``figures``
(matplotlib figures of results). Nothing here imports a web framework, a database or a queue.
"""

__version__ = "0.1.0"
