"""Design-space sweeps: a grid of arch/workload variations, run in parallel, resumable.

A sweep file (YAML) names a base arch and workload and a ``grid`` of dimensions; the points are
the cartesian product of the dimensions' values, in file order::

    name: crossbar_size
    arch: ../arch/isaac128.yaml          # paths resolve beside the sweep file
    workload: ../workloads/resnet50_mta.json
    grid:
      arch: [../arch/isaac64.yaml, ../arch/isaac128.yaml]   # whole files
      arch.components.adc.bits: [7, 8]                      # arch overrides (dotted keys)
      workload.tasks.1.tier1.pe_budget: [0.05, 0.1]         # workload overrides (list indices)
      workload.seed: [1, 2]                                 # the seed is a workload key too

Each point is a pure function of (arch document, workload document, overrides): the point carries
the parsed documents, so a worker on another machine needs no copy of the files, and its result
is keyed by a hash of the documents, the overrides and xsim's version. Results are cached as
``points/<hash>.json`` in the output folder, written atomically: a second run reuses every
finished point and never a half-written one (an interrupted write leaves only a ``.part`` file,
which is ignored).

Points run in a pool of local processes (all cores by default, :mod:`xsim.sweep.local`) or,
given a Dask scheduler address, on that cluster (:mod:`xsim.sweep.dask_cluster`, an optional
extra); both yield finished points to :func:`xsim.sweep.run.run_sweep`, which caches them
(:mod:`xsim.sweep.cache`). Either way each worker
process loads the numba kernels once (:func:`warm_kernels`), not once per point. A point that
raises is retried up to ``retries`` times (a lost worker process counts as a try), except for an
input error (a :class:`~xsim.config.XsimInputError`, e.g. an override the model does not fit),
which the next try would repeat; a point that still fails becomes one ``kind="failed"`` row of
the table carrying its error, is never cached as finished, and the rest of the sweep completes.
The results are gathered in grid order, whatever order they finish in, into ``sweep.csv`` (one
row per point, strategy and, for inference, component) and plots against the first grid
dimension.
"""

from xsim.sweep.point import compute_point, run_point, warm_kernels
from xsim.sweep.run import run_sweep, write_sweep
from xsim.sweep.spec import DEFAULT_RETRIES, Point, SchedulerError, SweepSpec, load_sweep

__all__ = ["DEFAULT_RETRIES", "Point", "SchedulerError", "SweepSpec", "compute_point", "load_sweep",
           "run_point", "run_sweep", "warm_kernels", "write_sweep"]
