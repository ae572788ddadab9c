"""xsim: a cycle-level simulator of ReRAM-crossbar DNN accelerators and of multi-task adaptation.

Public surface: :func:`load_arch`, :func:`load_workload`, :func:`simulate` and the
:class:`SimulationResult` it returns; the kernels live in :mod:`xsim.kernels`.
"""

from xsim.api import SimulationResult, simulate
from xsim.config import load_arch, load_workload

__version__ = "0.1.0"
__all__ = ["SimulationResult", "__version__", "load_arch", "load_workload", "simulate"]
