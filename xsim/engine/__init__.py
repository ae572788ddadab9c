"""Discrete-event engine (simpy): a mapped network running on the chip, in integer picoseconds.

:func:`simulate_inference` is the one-call entry; :class:`ChipModel` is the chip in an
environment that other processes (a reprogramming controller) share. See :mod:`xsim.engine.plan`
for the counting and timing model, :mod:`xsim.engine.chip` for the processes and granularity,
:mod:`xsim.engine.result` for the energy roll-up.
"""

from xsim.engine.chip import MODES, Batch, ChipModel, PeGroup, TimelineEvent
from xsim.engine.counters import Counters
from xsim.engine.plan import Plan, build_plan
from xsim.engine.result import InferenceResult
from xsim.engine.servers import Environment, Server
from xsim.engine.simulate import simulate_inference

__all__ = [
    "MODES",
    "Batch",
    "ChipModel",
    "Counters",
    "Environment",
    "InferenceResult",
    "PeGroup",
    "Plan",
    "Server",
    "TimelineEvent",
    "build_plan",
    "simulate_inference",
]
