"""The result of an inference run: latency, throughput, energy with its breakdown, timeline.

Energy = Σ action count × per-action energy (``Hardware.energy_pj``; every action's energy is its
component's dynamic power over its peak rate, see :mod:`xsim.energy`) + leakage × the run's span.
The headline energy per image includes the leakage; ``dynamic_energy_per_image_uj`` and
``leakage_energy_per_image_uj`` give the two parts.
Leakage is that of what is powered (:meth:`xsim.deployment.Deployment.leakage_mw`: with power
gating, the tiles holding mapped PEs, their routers and the chip-level links) plus
the tier-2 units of every PE when the run scales any PE. Per layer, a layer's PEs carry
``Hardware.pe.leakage_mw`` each; the rest (tiles, routers, links, unmapped PEs) is the ``(chip)``
row.

Throughput: the steady-state interval is measured once the pipeline is full. With at least
:data:`STEADY_MIN_IMAGES` images it is the larger of two means over the later half of the batch
(``m = n // 2``, times sorted): the time between completions, ``(done[n-1] - done[m]) / (n-1-m)``,
and the time between the images' starts, ``(start[n-1] - start[m]) / (n-1-m)``. The first half
fills the pipeline and its buffers, whose early completions come closer together than the steady
state allows; the last images of a batch meet no newer ones at the shared servers and finish
faster as the pipeline drains, so completions alone understate a short batch's interval (ResNet-50
with ``replication: auto`` on isaac128: 104 µs from 8 images, 122 µs from 48), while images
enter at the steady rate once the buffers are full (the image stream waits for room: 124-126 µs
from 8, 16, 32 or 48 images); an image stream that does not wait enters faster than the chip
serves, and then the completions are the larger (``interval_source = "steady_state"``). A
shorter batch cannot show the steady state: its interval is the larger of the mean completion
spacing and the analytic bottleneck (``"bounded"``), and one image gives the bottleneck alone
(``"bottleneck"``): the largest busy time per image of any layer replica or digital layer, a
lower bound of the true interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xsim.engine.chip import Batch, ChipModel, TimelineEvent

CHIP_ROW = "(chip)"
ENERGY_CONVENTION = ("energy_per_image_uj = actions x energy per action + leakage of the powered "
                     "components over the run (tiles without a mapped PE power-gated when the "
                     "arch's chip.power_gating is true)")


STEADY_MIN_IMAGES = 4
"""Images a batch needs for its interval to be measured in the steady state."""


def steady_interval(done_ps: list[int], bottleneck_ps: float,
                    start_ps: list[int] | None = None) -> tuple[float, str]:
    """The interval (ps) and its source from the completion (and start) times of a batch (module
    docstring)."""
    done = sorted(done_ps)
    n = len(done)
    if n >= STEADY_MIN_IMAGES:
        m = n // 2
        interval = (done[-1] - done[m]) / (n - 1 - m)
        if start_ps is not None:
            start = sorted(start_ps)
            interval = max(interval, (start[-1] - start[m]) / (n - 1 - m))
        return interval, "steady_state"
    if n > 1:
        return max(bottleneck_ps, (done[-1] - done[0]) / (n - 1)), "bounded"
    return bottleneck_ps, "bottleneck"


def _leak_pj(mw: float, ps: int) -> float:
    return mw * ps * 1e-3


@dataclass(frozen=True)
class InferenceResult:
    """Figures of one batch of pipelined images. Times in ps, energy in pJ."""

    network: str
    arch: str
    mode: str
    images: int
    weight_bits: int
    input_bits: int
    latency_ps: int
    image_latency_ps: tuple[int, ...]
    makespan_ps: int
    interval_ps: float
    interval_source: str
    bottleneck_layer: str
    dynamic_energy_pj: float
    leakage_energy_pj: float
    layers: tuple[dict, ...]
    components: tuple[dict, ...]
    counts: dict[str, dict[str, int]]
    timeline: tuple[TimelineEvent, ...] = field(repr=False)
    events: int = 0
    server_busy_ps: dict[str, int] = field(default_factory=dict, repr=False)
    """per shared server (a tile's eDRAM port or digital unit, a router, a link; named like
    ``sigmoid[41]``), the time it was held over the run: which one nears saturation"""

    @property
    def energy_pj(self) -> float:
        return self.dynamic_energy_pj + self.leakage_energy_pj

    @property
    def energy_per_image_pj(self) -> float:
        return self.energy_pj / self.images

    @property
    def throughput_per_s(self) -> float:
        return 1e12 / self.interval_ps

    @property
    def average_power_mw(self) -> float:
        return self.energy_pj / self.makespan_ps * 1e3

    def layer_rows(self) -> list[dict]:
        return [dict(row) for row in self.layers]

    def component_rows(self) -> list[dict]:
        return [dict(row) for row in self.components]

    def timeline_records(self) -> list[tuple[int, int, str, int, str]]:
        return [tuple(e) for e in self.timeline]

    def to_dict(self) -> dict:
        """Summary, per-layer and per-component rows (the timeline is left to ``timeline_records``)."""
        return {
            "network": self.network,
            "arch": self.arch,
            "mode": self.mode,
            "images": self.images,
            "precision": {"weight_bits": self.weight_bits, "input_bits": self.input_bits},
            "latency_ps": self.latency_ps,
            "latency_us": self.latency_ps / 1e6,
            "mean_image_latency_ps": sum(self.image_latency_ps) / self.images,
            "makespan_ps": self.makespan_ps,
            "interval_ps": self.interval_ps,
            "interval_source": self.interval_source,
            "throughput_images_per_s": self.throughput_per_s,
            "bottleneck_layer": self.bottleneck_layer,
            "energy_pj": self.energy_pj,
            "dynamic_energy_pj": self.dynamic_energy_pj,
            "leakage_energy_pj": self.leakage_energy_pj,
            "energy_per_image_uj": self.energy_per_image_pj / 1e6,
            "dynamic_energy_per_image_uj": self.dynamic_energy_pj / self.images / 1e6,
            "leakage_energy_per_image_uj": self.leakage_energy_pj / self.images / 1e6,
            "energy_convention": ENERGY_CONVENTION,
            "average_power_mw": self.average_power_mw,
            "events": self.events,
            "counts": self.counts,
            "layers": self.layer_rows(),
            "components": self.component_rows(),
        }


def collect(chip: ChipModel, batch: Batch, mode: str, events: int) -> InferenceResult:
    """Roll the chip's counters and activity after ``batch`` into an :class:`InferenceResult`."""
    hw, plan, arch = chip.hw, chip.plan, chip.arch
    done = [t for t in batch.image_done_ps if t is not None]
    if len(done) != batch.images:
        raise RuntimeError(f"{batch.images - len(done)} of {batch.images} images did not finish")
    starts = batch.image_start_ps
    latencies = tuple(d - s for d, s in zip(batch.image_done_ps, starts))
    makespan = max(done) - batch.start_ps

    per_node_interval = {}
    for node in plan.nodes:
        if node.replicas:
            per_node_interval[node.name] = max(sum(rp.share) * rp.mvm_ps for rp in node.replicas)
        else:
            per_tile: dict[int, int] = {}
            for row in node.row_plans:
                per_tile[row.tile] = per_tile.get(row.tile, 0) + row.busy_ps
            per_node_interval[node.name] = max(per_tile.values())
    bottleneck = max(per_node_interval, key=per_node_interval.get)
    interval, source = steady_interval(done, float(per_node_interval[bottleneck]), starts)

    by_layer = chip.counters.by_layer()
    energy = {key: hw.energy_pj(*key) for counts in by_layer.values() for key in counts}
    leak = chip.deployment.leakage_mw(tier2=bool(chip.scaled_pes))
    leakage_total = _leak_pj(sum(leak.values()), makespan)

    layers = []
    attributed_leak = 0.0
    for node in plan.nodes:
        counts = by_layer.pop(node.name, {})
        dynamic = sum(n * energy[key] for key, n in counts.items())
        pes = len(node.pes)
        leak_pj = _leak_pj(pes * hw.pe.leakage_mw, makespan)
        attributed_leak += leak_pj
        activity = chip.activity[node.index]
        units = max(1, len(node.replicas))
        layers.append({
            "layer": node.name,
            "kind": node.kind,
            "replicas": len(node.replicas),
            "pes": pes,
            "tiles": len(node.tiles),
            "mvms": sum(sum(rp.share) for rp in node.replicas) * batch.images,
            "busy_ps": activity.busy_ps,
            "utilisation": activity.busy_ps / (units * makespan) if makespan else 0.0,
            "first_ps": activity.first_ps,
            "last_ps": activity.last_ps,
            "dynamic_energy_pj": dynamic,
            "leakage_energy_pj": leak_pj,
            "energy_pj": dynamic + leak_pj,
            "energy_per_image_pj": (dynamic + leak_pj) / batch.images,
        })
    other_dynamic = sum(n * energy[key] for counts in by_layer.values() for key, n in counts.items())
    other_leak = leakage_total - attributed_leak
    if other_dynamic or other_leak > 1e-9 * max(1.0, leakage_total):
        layers.append({
            "layer": CHIP_ROW, "kind": "chip", "replicas": 0, "pes": 0, "tiles": 0, "mvms": 0,
            "busy_ps": 0, "utilisation": 0.0, "first_ps": None, "last_ps": None,
            "dynamic_energy_pj": other_dynamic, "leakage_energy_pj": other_leak,
            "energy_pj": other_dynamic + other_leak,
            "energy_per_image_pj": (other_dynamic + other_leak) / batch.images,
        })

    totals = chip.counters.totals()
    dynamic_total = sum(n * energy[(c, a)] for c, actions in totals.items() for a, n in actions.items())
    components = []
    for component in sorted(totals):
        for action, n in sorted(totals[component].items()):
            e = n * energy[(component, action)]
            components.append({
                "component": component, "action": action, "count": n,
                "energy_per_action_pj": energy[(component, action)], "energy_pj": e,
                "energy_per_image_pj": e / batch.images,
            })
    for component, mw in sorted(leak.items()):
        if mw:
            e = _leak_pj(mw, makespan)
            components.append({
                "component": component, "action": "leakage", "count": None,
                "energy_per_action_pj": None, "energy_pj": e, "energy_per_image_pj": e / batch.images,
            })

    return InferenceResult(
        network=chip.mapping.network.name, arch=arch.name, mode=mode, images=batch.images,
        weight_bits=chip.mapping.weight_bits, input_bits=chip.mapping.input_bits,
        latency_ps=latencies[0], image_latency_ps=latencies, makespan_ps=makespan,
        interval_ps=interval, interval_source=source, bottleneck_layer=bottleneck,
        dynamic_energy_pj=dynamic_total, leakage_energy_pj=leakage_total,
        layers=tuple(layers), components=tuple(components), counts=totals,
        timeline=tuple(map(TimelineEvent._make, chip.timeline or ())), events=events,
        server_busy_ps={s.name: s.busy_ps for s in chip.servers.values() if s.busy_ps},
    )
