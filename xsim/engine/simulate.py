"""One call that runs a batch of pipelined images through a fresh chip and returns the result."""

from __future__ import annotations

from collections.abc import Iterable

from xsim.deployment import Deployment
from xsim.engine.chip import ChipModel
from xsim.engine.result import InferenceResult, collect
from xsim.engine.servers import Environment


def simulate_inference(deployment: Deployment, *, images: int = 1,
                       mode: str = "coarse", scaled_pes: Iterable[int] = frozenset(),
                       record_timeline: bool = True) -> InferenceResult:
    """Simulate ``images`` pipelined inferences of the deployment from time 0.

    ``mode`` is ``"coarse"`` (one event per layer replica and output row) or ``"fine"`` (one per
    MVM, for small networks); ``scaled_pes`` are the PEs whose columns go through tier-2 scaling.
    """
    env = Environment()
    chip = ChipModel(env, deployment, mode=mode, scaled_pes=scaled_pes,
                     record_timeline=record_timeline)
    try:
        batch = chip.infer(images)
        env.run(until=batch.done)
        return collect(chip, batch, mode, env.scheduled)
    finally:
        chip.close()
