"""Engine energy against the roll-up: peak activity draws the listed power; leakage × time."""

from __future__ import annotations

from pathlib import Path

import pytest

from xsim.config.loader import load_arch
from xsim.deployment import Deployment
from xsim.energy import hardware
from xsim.engine import simulate_inference
from xsim.engine.plan import _Geometry
from xsim.mapping import map_network
from xsim.models import build_model, network_from_spec

ROOT = Path(__file__).resolve().parent.parent
ISAAC = ROOT / "arch" / "isaac128.yaml"
ANALOGUE = ("crossbar", "dac", "sample_hold", "adc", "pe_shift_add")

# A two-PE chip whose crossbars a 1x1 convolution fills completely: without the offset unit
# column every one of the 128 columns is a weight column, so each read cycle uses all cells.
SMALL = {"hierarchy.tiles_per_chip": 1, "hierarchy.pes_per_tile": 2, "crossbar.encoding": "differential",
         "crossbar.unit_columns": 0}


def _analogue_power_mw(arch) -> float:
    c = arch.components
    per_crossbar = (c["crossbar"].power_mw + c["dac"].count * c["dac"].power_mw
                    + c["sample_hold"].count * c["sample_hold"].power_mw
                    + c["adc"].count * c["adc"].power_mw)
    return (arch.crossbars_under("pe") * per_crossbar
            + c["pe_shift_add"].count * c["pe_shift_add"].power_mw)


def test_every_crossbar_busy_every_cycle_draws_the_pe_roll_up():
    arch = load_arch(ISAAC, SMALL)
    bits = 8
    wpr = arch.weights_per_array_row(bits)
    rows = arch.crossbar.rows * arch.arrays_per_pe
    net = network_from_spec("full", (rows, 3, 16), [
        {"kind": "conv", "name": "conv", "out_channels": 2 * wpr, "kernel": 1}])
    mapping = map_network(arch, net, weight_bits=bits, input_bits=bits)
    assert mapping.pe_count == arch.pes_per_chip  # every PE of the chip serves the layer
    assert mapping.utilisation() == 1.0
    hw = hardware(arch, bits, bits)
    res = simulate_inference(Deployment.of_mapping(mapping, hw))
    spans = sorted((e.start_ps, e.end_ps) for e in res.timeline if e.kind == "mvm")
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # no idle cycle in between
    window = spans[-1][1] - spans[0][0]
    assert window == 3 * 16 * hw.mvm_cycles * hw.read_cycle_ps
    energy = sum(n * hw.energy_pj(c, a) for c, actions in res.counts.items() if c in ANALOGUE
                 for a, n in actions.items())
    power_mw = energy / window * 1e3
    # The actions carry the dynamic part of the busy power; the leakage is drawn on top.
    leakage_mw = arch.pes_per_chip * sum(arch.units(arch.components[c], "pe")
                                         * arch.components[c].leakage_mw for c in ANALOGUE)
    assert power_mw + leakage_mw == pytest.approx(arch.pes_per_chip * _analogue_power_mw(arch),
                                                  rel=1e-12)
    # With the full-scale datapath at peak, the PE roll-up is the analogue part plus the registers.
    c = arch.components
    registers = c["input_register"].power_mw + c["pe_output_register"].power_mw
    assert hw.pe.power_mw == pytest.approx(_analogue_power_mw(arch) + registers)


def test_servers_at_their_rate_draw_their_listed_power():
    """A server the engine keeps busy back to back moves units at the rate the energy table
    divides the component's dynamic power (busy power less leakage) by: eDRAM port, router,
    off-chip links, digital units."""

    def dynamic(unit):
        return unit.power_mw - unit.leakage_mw

    arch = load_arch(ISAAC)
    hw = hardware(arch, 8, 8)
    mlp = map_network(arch, build_model("mlp"), weight_bits=8, input_bits=8)
    geo = _Geometry(Deployment.of_mapping(mlp, hw))
    clocks = 1200  # 1 us at 1.2 GHz: whole clocks, so no rounding
    edram_bytes = clocks * geo.edram_bits // 8
    assert geo.edram_bits == arch.role("edram").width_bits  # the eDRAM, not the bus, sets the rate
    edram_ps = geo.edram_ps(edram_bytes)
    assert edram_bytes * hw.energy_pj("edram", "byte") / edram_ps * 1e3 == pytest.approx(
        dynamic(arch.role("edram")))
    link, router = arch.role("offchip"), arch.role("router")
    link_bytes = 64_000
    assert link_bytes * hw.energy_pj("offchip", "byte") / geo.offchip_ps(link_bytes) * 1e3 == (
        pytest.approx(link.count * dynamic(link)))
    counts: dict = {}
    flits = clocks * router.ports
    holds, _ = geo.noc([(0, (1,), flits * router.flit_bits // 8)], counts)
    hold = holds[0][0].item_ps
    assert counts[("router", "flit")] == flits  # one router between tiles 0 and 1
    assert flits * hw.energy_pj("router", "flit") / hold * 1e3 == pytest.approx(dynamic(router))
    for name in ("maxpool", "sigmoid", "tile_shift_add"):
        unit = arch.role(name)
        ops = clocks * unit.count
        assert ops * hw.energy_pj(name, "op") / geo.ops_ps(ops, unit.count) * 1e3 == (
            pytest.approx(unit.count * dynamic(unit)))


def test_leakage_times_span():
    """Leakage x the run's span, of the whole chip without power gating and of the powered tiles
    (here one), their router and the chip-level links with it."""
    net = network_from_spec("tiny", (16, 4, 4), [
        {"kind": "conv", "name": "conv", "out_channels": 8, "kernel": 3, "padding": 1,
         "activation": "relu"},
        {"kind": "maxpool", "name": "pool", "kernel": 2}])
    ungated = load_arch(ISAAC, {"components.offchip.leakage_mw": 100.0,
                                "chip.power_gating": False})
    hw = hardware(ungated, 8, 8)
    assert sum(c.leakage_mw for c in hw.components if c.part == "base") == pytest.approx(
        hw.chip.leakage_mw)
    mapping = map_network(ungated, net, weight_bits=8, input_bits=8)
    res = simulate_inference(Deployment.of_mapping(mapping, hw))
    assert res.leakage_energy_pj == pytest.approx(hw.chip.leakage_mw * res.makespan_ps * 1e-3)
    layers = {row["layer"]: row for row in res.layer_rows()}
    assert layers["conv"]["leakage_energy_pj"] == pytest.approx(
        hw.pe.leakage_mw * res.makespan_ps * 1e-3)
    assert layers["(chip)"]["leakage_energy_pj"] == pytest.approx(
        res.leakage_energy_pj - layers["conv"]["leakage_energy_pj"])
    leak_rows = [r for r in res.component_rows() if r["action"] == "leakage"]
    assert sum(r["energy_pj"] for r in leak_rows) == pytest.approx(res.leakage_energy_pj)
    assert sum(r["energy_pj"] for r in res.component_rows()) == pytest.approx(res.energy_pj)
    # The ADC's per-conversion energy excludes its leakage, so busy + leakage is its power.
    adc = ungated.role("adc")
    assert hw.energy_pj("adc", "conversion") == pytest.approx(
        (adc.power_mw - adc.leakage_mw) * 1e-3 / (adc.sample_rate_gsps * 1e9) * 1e12)

    gated = load_arch(ISAAC, {"components.offchip.leakage_mw": 100.0})
    hw = hardware(gated, 8, 8)
    mapping = map_network(gated, net, weight_bits=8, input_bits=8)
    assert mapping.tiles == 1
    res = simulate_inference(Deployment.of_mapping(mapping, hw))
    tile_mw = sum(gated.units(c, "tile") * c.leakage_mw for name, c in gated.components.items()
                  if c.part == "base" and name not in ("router", "offchip"))
    router = gated.role("router")
    powered_mw = tile_mw + router.leakage_mw + 4 * 100.0  # one tile, its router, the 4 links
    assert res.leakage_energy_pj == pytest.approx(powered_mw * res.makespan_ps * 1e-3)
