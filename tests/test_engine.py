"""Engine: action counts against closed forms, coarse against fine, timing invariants, result rows."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from xsim.config.loader import load_arch
from xsim.deployment import Deployment
from xsim.energy import hardware
from xsim.engine import ChipModel, Environment, simulate_inference
from xsim.mapping import map_network
from xsim.models import build_model, network_from_spec

ROOT = Path(__file__).resolve().parent.parent
ARCH = load_arch(ROOT / "arch" / "isaac128.yaml")
BITS = 8
HW = hardware(ARCH, BITS, BITS)


def _mapping(net, arch=ARCH, **kw):
    return map_network(arch, net, weight_bits=BITS, input_bits=BITS, **kw)


def _conv_net(cin=20, cout=40, hw=6, kernel=3, activation="relu"):
    return network_from_spec("one_conv", (cin, hw, hw), [
        {"kind": "conv", "name": "conv", "out_channels": cout, "kernel": kernel, "padding": 1,
         "activation": activation},
    ])


ROW_START = load_arch(ROOT / "arch" / "isaac128.yaml", {"chip.pipeline_start": "row"})


@pytest.fixture(scope="module")
def small_results():
    # Fine mode (one booking per MVM) starts rows at row level; coarse is held to it there.
    out = {}
    for name in ("lenet5", "mlp", "resnet20"):
        mapping = _mapping(build_model(name), ROW_START)
        out[name] = {mode: simulate_inference(Deployment.of_mapping(mapping), images=3, mode=mode)
                     for mode in ("coarse", "fine")}
    return out


@pytest.mark.parametrize("name", ["lenet5", "mlp", "resnet20"])
def test_coarse_matches_fine(small_results, name):
    coarse, fine = small_results[name]["coarse"], small_results[name]["fine"]
    assert coarse.counts == fine.counts
    assert fine.events > coarse.events or name == "mlp"
    for a, b in zip(coarse.image_latency_ps, fine.image_latency_ps):
        assert abs(a - b) <= 0.01 * b
    assert abs(coarse.makespan_ps - fine.makespan_ps) <= 0.01 * fine.makespan_ps


def test_closed_form_counts_of_one_conv():
    net = _conv_net()
    mapping = _mapping(net)
    (lm,) = mapping.layers
    res = simulate_inference(Deployment.of_mapping(mapping, HW), images=2)
    layer = net["conv"]
    images, mvms = 2, layer.output_pixels
    K, N = layer.matrix_shape
    cyc = math.ceil(BITS / ARCH.dac_bits)
    cpw, unit = mapping.columns_per_weight, ARCH.crossbar.unit_columns
    columns = N * cpw + lm.col_blocks * unit
    per = images * mvms
    c = res.counts
    assert c["dac"]["row_drive"] == per * cyc * K * lm.col_blocks
    assert c["crossbar"]["cell_read"] == per * cyc * K * columns
    conversions = per * cyc * lm.row_blocks * columns
    assert c["adc"]["conversion"] == conversions
    assert c["sample_hold"]["sample"] == conversions
    assert c["pe_shift_add"]["add"] == conversions
    assert c["input_register"]["byte"] == per * K * math.ceil(lm.col_blocks / lm.col_blocks_per_pe)
    assert c["pe_output_register"]["byte"] == per * N * 2  # 16-bit partial sums, one row group
    assert c["sigmoid"]["op"] == per * N
    assert "tile_shift_add" not in c
    # The input image in, the outputs out, both through the off-chip link.
    assert c["offchip"]["byte"] == images * (20 * 6 * 6 + N * mvms)


def test_counts_of_a_layer_spread_over_row_groups():
    # K = 1152 rows: 9 row blocks, two row-block groups (8 + 1 crossbars), so the home tile adds.
    net = network_from_spec("wide", (128, 3, 3), [
        {"kind": "conv", "name": "conv", "out_channels": 64, "kernel": 3, "padding": 1}])
    mapping = _mapping(net)
    (lm,) = mapping.layers
    res = simulate_inference(Deployment.of_mapping(mapping, HW))
    assert lm.row_blocks == 9 and lm.row_blocks_per_pe == 8
    N, mvms = 64, 9
    assert res.counts["tile_shift_add"]["op"] == mvms * (2 - 1) * N
    assert res.counts["pe_output_register"]["byte"] == mvms * 2 * N * 2
    assert "sigmoid" not in res.counts


def test_partial_sums_are_added_up_on_their_tiles_before_they_travel_home():
    # K = 14336 rows (112 row blocks of 128, 8 to a PE) and N = 64 (two column blocks of 32): 14
    # PEs per column block, 28 on tiles 0-2. Columns 0-31: 12 PEs on tile 0 (home), 2 on tile 1;
    # columns 32-63: 10 on tile 1, 4 on tile 2. Each tile adds up its own PEs' sums first: tile 1
    # (2 - 1)·32 + (10 - 1)·32 = 320 adds, tile 2 (4 - 1)·32 = 96; the home adds its own
    # (12 - 1)·32 and one sum from another tile per column, 352 + 64 = 416: 832 = (14 - 1)·64 in
    # all. Tile 1 sends 64 sums home, tile 2 32, of 2 bytes each (8-bit inputs and weights).
    from xsim.engine.plan import OFFCHIP, _Geometry

    net = network_from_spec("deep", (14336, 1, 1), [
        {"kind": "conv", "name": "conv", "out_channels": 64, "kernel": 1}])
    mapping = _mapping(net)
    where = {}
    for p in mapping.pes:
        where[(p.col_start, p.tile)] = where.get((p.col_start, p.tile), 0) + 1
    assert where == {(0, 0): 12, (0, 1): 2, (32, 1): 10, (32, 2): 4}
    dep = Deployment.of_mapping(mapping, HW)
    (rp,) = ChipModel(Environment(), dep).plan.nodes[1].replicas
    geo, adders = _Geometry(dep), ARCH.unit_count("tile_shift_add", "tile")
    local, _holds, _latency, at_home, *_ = rp.drains[0]
    assert {path[0].server: path[0].item_ps for path in local} == {
        ("tile_shift_add", 1): geo.ops_ps(320, adders), ("tile_shift_add", 2): geo.ops_ps(96, adders)}
    assert at_home[0][0].server == ("tile_shift_add", 0)
    assert at_home[0][0].item_ps == geo.ops_ps(416, adders)
    assert rp.counts[0][("tile_shift_add", "op")] == 832
    # Router flits: the two messages home (one router: tiles 0-3 share it), then the logits out.
    out = {}
    geo.deliver(0, (OFFCHIP,), 64, out)
    flit = ARCH.role("router").flit_bits
    psum_flits = math.ceil(64 * 2 * 8 / flit) + math.ceil(32 * 2 * 8 / flit)
    assert rp.counts[0][("router", "flit")] == psum_flits + out.get(("router", "flit"), 0)


def test_tier2_counts_are_their_own_component():
    mapping = _mapping(build_model("lenet5"))
    scaled = frozenset(p.index for p in mapping.pes if p.layer == "fc1")
    base = simulate_inference(Deployment.of_mapping(mapping, HW))
    res = simulate_inference(Deployment.of_mapping(mapping, HW), scaled_pes=scaled)
    columns = sum(mapping.pes[p].weight_columns for p in scaled)
    assert res.counts["tier2_scale"]["op"] == columns
    assert res.counts["tier2_register"]["byte"] == math.ceil(columns * ARCH.tier2.scale_bits / 8)
    assert "tier2_scale" not in base.counts
    rows = {r["component"]: r for r in res.component_rows() if r["action"] != "leakage"}
    assert rows["tier2_scale"]["energy_pj"] == pytest.approx(columns * HW.energy_pj("tier2_scale", "op"))
    assert res.latency_ps >= base.latency_ps


def test_pipelined_throughput_is_bound_by_the_slowest_layer():
    mapping = _mapping(build_model("lenet5"))
    res = simulate_inference(Deployment.of_mapping(mapping, HW), images=4)
    conv1 = mapping.network["conv1"]
    bound = conv1.output_pixels * HW.mvm_cycles * HW.read_cycle_ps
    assert res.bottleneck_layer == "conv1"
    assert bound <= res.interval_ps <= 1.01 * bound
    assert res.latency_ps > bound
    single = simulate_inference(Deployment.of_mapping(mapping, HW), images=1)
    assert single.interval_source == "bottleneck" and single.interval_ps == bound


def test_interval_is_measured_once_the_pipeline_is_full():
    from xsim.engine.result import steady_interval

    # Two images fill the pipeline at once, then one leaves every 10: the true interval is 10,
    # which the mean spacing over the whole batch (52 / 7) understates.
    done = [10, 11, 12, 22, 32, 42, 52, 62]
    assert steady_interval(done, 4.0) == (10.0, "steady_state")
    assert steady_interval(done[:2], 4.0) == (4.0, "bounded")
    assert steady_interval(done[:3], 0.5) == (1.0, "bounded")
    assert steady_interval(done[:1], 4.0) == (4.0, "bottleneck")
    # An image stream that does not wait for room enters faster than the chip serves: the
    # completions give the interval.
    assert steady_interval(done, 4.0, [0, 1, 2, 3, 4, 5, 6, 7]) == (10.0, "steady_state")
    # Images enter every 10 once the buffers are full, and the last three, meeting no newer
    # images at the shared servers, finish faster as the pipeline drains: the completions alone
    # say 10/3, the starts say the truth.
    drained = [10, 20, 30, 40, 50, 55, 58, 60]
    starts = [0, 1, 10, 20, 30, 40, 50, 60]
    assert steady_interval(drained, 4.0) == (10 / 3, "steady_state")
    assert steady_interval(drained, 4.0, starts) == (10.0, "steady_state")
    # LeNet-5 on ISAAC: conv1's crossbars bound the pipeline, so the truth is its busy time.
    mapping = _mapping(build_model("lenet5"))
    res = simulate_inference(Deployment.of_mapping(mapping, HW), images=12, record_timeline=False)
    bound = mapping.network["conv1"].output_pixels * HW.mvm_cycles * HW.read_cycle_ps
    assert res.interval_source == "steady_state"
    assert res.interval_ps == pytest.approx(bound, rel=1e-3)


def test_result_rows_and_timeline():
    mapping = _mapping(build_model("lenet5"))
    res = simulate_inference(Deployment.of_mapping(mapping, HW), images=2)
    d = res.to_dict()
    assert d["images"] == 2 and d["latency_ps"] == res.latency_ps
    layers = {row["layer"]: row for row in res.layer_rows()}
    assert set(layers) >= {"input", "conv1", "pool1", "fc3"}
    assert sum(r["energy_pj"] for r in layers.values()) == pytest.approx(res.energy_pj)
    assert sum(r["energy_pj"] for r in res.component_rows()) == pytest.approx(res.energy_pj)
    assert layers["conv1"]["mvms"] == 2 * 28 * 28
    assert layers["conv1"]["busy_ps"] == 2 * 28 * 28 * HW.mvm_cycles * HW.read_cycle_ps
    assert 0 < layers["conv1"]["utilisation"] <= 1
    for start, end, layer, tile, kind in res.timeline_records():
        assert 0 <= start <= end <= res.makespan_ps
        assert isinstance(layer, str) and isinstance(tile, int) and isinstance(kind, str)
    mvm = [e for e in res.timeline if e.layer == "conv1"]
    assert len(mvm) == 2 * 28  # one span per output row in coarse mode
    assert all(a.end_ps <= b.start_ps for a, b in zip(mvm, mvm[1:]))


def test_a_chip_runs_in_the_counting_environment_only():
    import simpy

    with pytest.raises(TypeError, match="xsim.engine.servers.Environment"):
        ChipModel(simpy.Environment(), Deployment.of_mapping(_mapping(build_model("lenet5")), HW))


def test_hold_blocks_a_pe_group_while_others_serve():
    mapping = _mapping(build_model("lenet5"))
    free = simulate_inference(Deployment.of_mapping(mapping, HW))
    env = Environment()
    chip = ChipModel(env, Deployment.of_mapping(mapping, HW))
    hold_ps = 50_000_000
    env.process(chip.hold_pes(chip.pes_of("fc1"), hold_ps))
    batch = chip.infer(1, start_ps=0)
    env.run(until=batch.done)
    assert batch.image_done_ps[0] == free.latency_ps  # fc1 is idle until conv1/conv2 are done
    env2 = Environment()
    chip2 = ChipModel(env2, Deployment.of_mapping(mapping, HW))
    env2.process(chip2.hold_pes(chip2.pes_of("conv1"), hold_ps))
    batch2 = chip2.infer(1, start_ps=0)
    env2.run(until=batch2.done)
    assert batch2.image_done_ps[0] == pytest.approx(free.latency_ps + hold_ps, rel=1e-3)


def test_bad_arguments_raise():
    mapping = _mapping(build_model("mlp"))
    with pytest.raises(ValueError, match="mode"):
        simulate_inference(Deployment.of_mapping(mapping, HW), mode="exact")
    with pytest.raises(ValueError, match="images"):
        simulate_inference(Deployment.of_mapping(mapping, HW), images=0)
    with pytest.raises(ValueError, match="scaled_pes"):
        simulate_inference(Deployment.of_mapping(mapping, HW), scaled_pes={10_000})
    with pytest.raises(ValueError, match="bit"):
        simulate_inference(Deployment.of_mapping(mapping, hardware(ARCH, 16, 16)))


def test_c_mesh_routes_and_multicast_hold_every_router_on_the_way():
    from xsim.engine.plan import OFFCHIP, Stage, _Geometry

    deployment = Deployment.of_mapping(_mapping(build_model("lenet5")), HW)
    geo = _Geometry(deployment)
    assert geo.mesh_width == 7  # 42 routers of 4 tiles
    assert geo.route(0, 16) == [0, 1, 2, 9, 16]  # columns first, then rows
    assert geo.route(16, 0) == [16, 15, 14, 7, 0]
    counts = {}
    # Tile 0 to tiles 8 (router 2) and 36 (router 9): one tree of routers 0, 1, 2, 9.
    forks = geo.deliver(0, (8, 36), 64, counts)
    held = [path[0].server for path in forks[0]]
    assert held == [("router", 0), ("router", 1), ("router", 2), ("router", 9)]
    flits = 64 * 8 // ARCH.role("router").flit_bits
    assert counts[("router", "flit")] == 4 * flits
    assert counts[("edram", "byte")] == 2 * 64
    assert geo.deliver(3, (3,), 64, {}) == (((Stage(("edram", 3), geo.edram_ps(64)),),),)
    # Results leave on the link's own direction (full duplex) or share the input's (half).
    out = geo.deliver(0, (OFFCHIP,), 8, {})[-1][0][0].server
    assert out == ("offchip", 1)
    half = load_arch(ROOT / "arch" / "isaac128.yaml", {"components.offchip.duplex": "half"})
    geo = _Geometry(Deployment.of(half, build_model("lenet5"), weight_bits=BITS, input_bits=BITS))
    assert geo.deliver(0, (OFFCHIP,), 8, {})[-1][0][0].server == ("offchip", 0)


def test_replication_leaves_the_reserved_pes_and_digital_layers_follow():
    net = build_model("resnet20")
    plain = _mapping(net)
    rep = _mapping(net, replication=True, reserved_pes=100)
    assert rep.pe_count <= ARCH.pes_per_chip - 100 < rep.pe_count + max(
        lm.pes_per_replica for lm in rep.layers)
    one, many = (simulate_inference(Deployment.of_mapping(m, HW), images=8, record_timeline=False)
                 for m in (plain, rep))
    assert many.throughput_per_s > 5 * one.throughput_per_s
    from xsim.engine.plan import build_plan, crossbar_interval_ps

    dep = Deployment.of_mapping(rep, HW)
    assert many.interval_ps < 1.25 * crossbar_interval_ps(dep)
    # A residual add fed faster than one tile's units can serve spreads its rows over tiles.
    adds = [n for n in build_plan(dep).nodes if n.kind == "add"]
    assert max(len(n.tiles) for n in adds) > 1


def test_an_edram_too_small_for_a_window_fails_clearly():
    from xsim.config import ConfigError

    net = _conv_net(cin=64, cout=16, hw=32, kernel=3)  # window: 2 rows + 3 pixels of 64 channels
    small = load_arch(ROOT / "arch" / "isaac128.yaml", {"components.edram.size_kb": 4})
    window_kb = (2 * 32 + 3) * 64 / 1024
    with pytest.raises(ConfigError, match=rf"isaac128.yaml.*components.edram.size_kb.*tile 0's "
                                          rf"eDRAM of 4 KB.*{window_kb:.1f} KB.*at least 5 KB"):
        simulate_inference(Deployment.of(small, net, weight_bits=BITS, input_bits=BITS))


def test_a_one_row_input_buffer_costs_a_1x1_conv_almost_nothing():
    # A 1x1 conv reads one input row per output row. With room for one row (2.5 KB) the image
    # cannot run ahead, but the conv frees the row's slot as it reads it: row q goes over the
    # link while the conv's last MVMs of row q - 1 run (row-level start) or pixel by pixel behind
    # them (window-level start), so the 80 ns link time per row stays hidden behind each row's
    # 8 MVMs, as with 64 KB, where the whole image streams in at once.
    net = network_from_spec("wide_in", (256, 8, 8), [
        {"kind": "conv", "name": "conv", "out_channels": 16, "kernel": 1}])
    hw = hardware(ARCH, BITS, BITS)
    row_mvms = 8 * hw.mvm_cycles * hw.read_cycle_ps
    for start in ("row", "window"):
        out = {}
        for kb in (64, 2.5):
            arch = load_arch(ROOT / "arch" / "isaac128.yaml",
                             {"components.edram.size_kb": kb, "chip.pipeline_start": start})
            dep = Deployment.of(arch, net, weight_bits=BITS, input_bits=BITS)
            assert ChipModel(Environment(), dep).plan.input_depth_rows == (32 if kb == 64 else 1)
            out[kb] = simulate_inference(dep, images=1).latency_ps
        assert 8 * row_mvms < out[2.5] < 1.02 * out[64]


RESIDUAL = [
    {"kind": "conv", "name": "c0", "out_channels": 64, "kernel": 1, "activation": "relu"},
    {"kind": "conv", "name": "a", "out_channels": 64, "kernel": 3, "padding": 1, "activation": "relu"},
    {"kind": "conv", "name": "b", "out_channels": 64, "kernel": 3, "padding": 1},
    {"kind": "add", "name": "add", "inputs": ["c0", "b"], "activation": "relu"},
]


def test_the_skip_buffer_minimum_is_what_the_main_path_lags_by():
    # add row r reads c0 row r, but only once b row r exists, which needs a rows up to r + 1 and
    # so c0 rows up to r + 2: c0's buffer at the add must hold rows r .. r + 2 (3 rows); b's
    # buffer at the add needs its one row, and a chain edge (c0 into the 3x3 conv a) the 3 rows
    # one output row reads. Where every stream waits for room, the plan gives each at least its
    # minimum.
    from xsim.engine.plan import stream_depths, stream_reads

    plan = ChipModel(Environment(), _residual(64)).plan
    names = {n.name: n.index for n in plan.nodes}
    depth = {(p, b.consumer): b.depth for p, bufs in enumerate(plan.buffers) for b in bufs}
    nodes = plan.nodes
    rows = [n.rows for n in nodes]
    producers = [n.producers for n in nodes]
    firsts = [n.firsts for n in nodes]
    consumers = [[b.consumer for b in bufs] for bufs in plan.buffers]
    minimum = stream_depths(rows, producers, firsts, consumers)
    assert minimum[(names["c0"], names["add"])] == 3
    assert minimum[(names["b"], names["add"])] == 1
    assert minimum[(names["c0"], names["a"])] == 3
    assert stream_reads(names["a"], producers, firsts)[names["c0"]][0] == 3
    assert all(depth[e] >= m for e, m in minimum.items())


def _residual(kb, backpressure="all", start="row"):
    arch = load_arch(ROOT / "arch" / "isaac128.yaml", {
        "components.edram.size_kb": kb, "chip.backpressure": backpressure,
        "chip.pipeline_start": start})
    net = network_from_spec("res", (64, 16, 16), RESIDUAL)
    return Deployment.of(arch, net, weight_bits=BITS, input_bits=BITS)


def test_only_the_streams_that_wait_for_room_run_ahead():
    # With backpressure on the image stream only, the eDRAM a tile has left after every
    # stream's rows (the rows one output row reads) is the image stream's run-ahead; the
    # layers' streams keep those rows. With backpressure everywhere, they share it.
    from xsim.engine.plan import stream_reads

    dep = _residual(64, backpressure="input")
    plan = ChipModel(Environment(), dep).plan
    producers, firsts = [n.producers for n in plan.nodes], [n.firsts for n in plan.nodes]
    for p, bufs in enumerate(plan.buffers[1:], start=1):
        for b in bufs:
            assert b.depth == stream_reads(b.consumer, producers, firsts)[p][0]
    # Every layer sits on tile 0, rows of 64 channels x 16 pixels (1 KB): the image -> c0 (1x1)
    # stream holds 1 row, c0 -> a and a -> b (3x3) 3 rows each, c0 -> add and b -> add 1 each,
    # 9 KB in all; the image runs ahead by the 55 KB left, 55 of its 1 KB rows, depth 1 + 55.
    assert set(plan.edram_windows) == {0}
    assert plan.input_depth_rows == 1 + (64 * 1024 - 9 * 1024) // 1024
    shared = {(p, b.consumer): b.depth for p, bufs in enumerate(
        ChipModel(Environment(), _residual(20, backpressure="all")).plan.buffers) for b in bufs}
    alone = {(p, b.consumer): b.depth for p, bufs in enumerate(
        ChipModel(Environment(), _residual(20, backpressure="input")).plan.buffers) for b in bufs}
    assert alone[(0, 1)] > shared[(0, 1)]


def test_a_skip_buffer_at_its_minimum_stalls_the_block_as_a_hand_bound_says():
    # With c0's buffer at the add holding its minimum of 3 rows (row-level start), c0 writes row
    # r + 3 only once the add has read row r, which needs b row r, a row r + 1 and c0 row r + 2:
    # every c0 row waits for a's and b's row times in turn, so the image takes at least
    # (H - 3) * (T_a + T_b) with T = 16 MVMs a row; with 64 KB it pipelines at one row time.
    hw = hardware(ARCH, BITS, BITS)
    row_time = 16 * hw.mvm_cycles * hw.read_cycle_ps
    small, big = _residual(20), _residual(64)
    names = {n.name: n.index for n in ChipModel(Environment(), small).plan.nodes}
    skip = (names["c0"], names["add"])
    depth = {k: {(p, b.consumer): b.depth for p, bufs in enumerate(
        ChipModel(Environment(), d).plan.buffers) for b in bufs} for k, d in (("s", small), ("b", big))}
    assert depth["s"][skip] == 3 < depth["b"][skip]
    stalled, free = (simulate_inference(d, images=1).latency_ps for d in (small, big))
    assert stalled >= (16 - 3) * 2 * row_time
    assert free < (16 - 3) * 2 * row_time
    # Backpressure only on the input (the default) ignores the inner buffers.
    only_input = simulate_inference(_residual(20, "input"), images=1).latency_ps
    assert abs(only_input - free) < 0.01 * free


def test_an_edram_too_small_for_a_skip_path_fails_clearly():
    from xsim.config import ConfigError

    with pytest.raises(ConfigError, match=r"components.edram.size_kb.*layer 'add'.*3 rows of 'c0'.*"
                                          r"KB more eDRAM"):
        simulate_inference(_residual(12))


def test_window_level_start_is_the_default_and_earlier():
    net = build_model("resnet20")
    window = simulate_inference(Deployment.of_mapping(_mapping(net)))
    row = simulate_inference(Deployment.of_mapping(_mapping(net, ROW_START)))
    assert ARCH.chip.pipeline_start == "window"
    assert window.latency_ps < 0.95 * row.latency_ps
    assert window.counts == row.counts
    # Still no earlier than the busiest layer's MVMs of the image.
    assert window.latency_ps > max(row["busy_ps"] for row in window.layer_rows())
    with pytest.raises(ValueError, match="pipeline_start: row"):
        simulate_inference(Deployment.of_mapping(_mapping(net)), mode="fine")


def test_a_deployment_lends_its_wiring_to_one_chip_at_a_time():
    dep = Deployment.of_mapping(_mapping(build_model("resnet20")), HW)
    a = ChipModel(Environment(), dep)
    b = ChipModel(Environment(), dep)
    assert a.servers is not b.servers  # a holds the deployment's wiring: b binds its own
    assert a.plan is b.plan  # the plan is built once
    a.close()
    c = ChipModel(Environment(), dep)
    assert c.servers is a.servers and all(not s.ends for s in c.servers.values())
    c.close()
    # Servers handed from run to run give what a fresh deployment's servers give.
    first = simulate_inference(dep, images=3, record_timeline=False)
    again = simulate_inference(dep, images=3, record_timeline=False)
    fresh = simulate_inference(Deployment.of_mapping(dep.mapping, HW), images=3, record_timeline=False)
    for r in (again, fresh):
        assert r.image_latency_ps == first.image_latency_ps and r.counts == first.counts
        assert r.makespan_ps == first.makespan_ps
    # What the engine keeps with a deployment does not travel with a pickled copy.
    import pickle

    copy = pickle.loads(pickle.dumps(dep))
    assert "_derived" in dep.__dict__ and "_derived" not in copy.__dict__
    assert simulate_inference(copy, images=3, record_timeline=False).makespan_ps == first.makespan_ps


def test_scaled_sets_with_one_tier2_timing_share_a_run_exactly():
    from xsim.engine.chip import tier2_timing
    from xsim.engine.simulate import same_tier2_timing, simulate_scaled

    # One replica of four PEs that scale alike: any non-empty subset gives the same run.
    dep = Deployment.of_mapping(_mapping(_conv_net(cin=64, cout=128, hw=6)), HW)
    pes = sorted(p.index for p in dep.mapping.pes)
    assert len(pes) == 4
    sets = [frozenset(), frozenset(pes), frozenset(pes[1:]), frozenset(pes[::2]), frozenset(pes)]
    groups = same_tier2_timing(dep, sets)
    assert [len(g) for g in groups] == [1, 3]  # the distinct sets, the scaled ones in one run
    plan = ChipModel(Environment(), dep).plan
    assert all(len({tier2_timing(plan, s) for s in g}) == 1 for g in groups)
    for pes_set, shared in zip(sets, simulate_scaled(dep, sets)):
        alone = simulate_inference(dep, scaled_pes=pes_set, record_timeline=False)
        assert shared.counts == alone.counts and shared.latency_ps == alone.latency_ps
        assert shared.energy_per_image_pj == alone.energy_per_image_pj
    full, part = simulate_scaled(dep, [frozenset(pes), frozenset(pes[1:])])
    assert full.counts["tier2_scale"]["op"] > part.counts["tier2_scale"]["op"] > 0
    chip = ChipModel(Environment(), dep, scaled_pes=frozenset())
    with pytest.raises(ValueError, match="other tier-2 latencies"):
        chip.recount_scaled_pes(frozenset(pes))
    chip.close()


def test_digital_rows_spread_even_where_few_tiles_have_room():
    # With 32 KB per tile only one tile near layer1.1.add has eDRAM room for its input streams;
    # the nearest others make up the tiles its rows need, so no tile's units are planned past
    # the crossbars' pace (all 56 rows on the one tile put its shift-and-add at 7.5 times it).
    from xsim.api import prepare
    from xsim.engine.plan import _Builder

    dep = prepare(ROOT / "arch" / "isaac128.yaml", ROOT / "workloads" / "resnet50_mta.json",
                  {"components.edram.size_kb": 32})
    builder = _Builder(dep)
    plan = builder.build()
    (add,) = [n for n in plan.nodes if n.name == "layer1.1.add"]
    assert len({row.tile for row in add.row_plans}) > 1
    assert max(builder.digital_load.values()) < builder.xbar_interval_ps
