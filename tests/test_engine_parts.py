"""Engine parts: a server's calendar against the first-fit reference, counters, the plan's needs,
the workers' priority."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from kernel_reference import ReferenceCalendar

from xsim.config.loader import load_arch
from xsim.deployment import Deployment
from xsim.energy import hardware
from xsim.engine import Counters, Environment, Server, build_plan
from xsim.engine.plan import _row_share
from xsim.mapping import map_network
from xsim.models import build_model

ROOT = Path(__file__).resolve().parent.parent


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 30)), max_size=80))
def test_server_books_the_first_free_gap(requests):
    server = Server(Environment(), "s")
    ref = ReferenceCalendar()
    for earliest, duration in requests:
        assert server.book(earliest, duration) == ref.book(earliest, duration)
    # The clock stays at 0, so nothing is pruned: the whole calendar is the reference's.
    assert list(zip(server.starts, server.ends)) == ref.busy
    assert server.busy_ps == ref.busy_ps


def test_counters_add_register_tally():
    c = Counters()
    c.add("conv", "adc", "conversion", 5)
    src = c.register("conv", {("adc", "conversion"): 3, ("dac", "row_drive"): 2})
    c.tally(src, 4)
    c.add("fc", "router", "flit", 7)
    assert c.totals() == {"adc": {"conversion": 17}, "dac": {"row_drive": 8}, "router": {"flit": 7}}
    assert c.by_layer()["conv"] == {("adc", "conversion"): 17, ("dac", "row_drive"): 8}
    assert c.count("router", "flit", layer="conv") == 0


def test_replicas_share_every_pixel_once():
    for rows, width, replicas in ((7, 7, 3), (4, 2, 5), (56, 56, 1), (3, 10, 10)):
        shares = [_row_share(rows, width, replicas, j) for j in range(replicas)]
        assert [sum(s[r] for s in shares) for r in range(rows)] == [width] * rows
        totals = [sum(s) for s in shares]
        assert max(totals) - min(totals) <= 1


def test_plan_follows_the_graph():
    arch = load_arch(ROOT / "arch" / "isaac128.yaml")
    net = build_model("resnet20")
    mapping = map_network(arch, net, weight_bits=8, input_bits=8)
    plan = build_plan(Deployment.of_mapping(mapping, hardware(arch, 8, 8)))
    nodes = {n.name: n for n in plan.nodes}
    assert "flatten" not in nodes  # a view: fc reads avgpool directly
    conv1 = nodes["conv1"]
    ((src, need),) = conv1.producers
    assert src == 0 and need[0] == 1 and need[-1] == 31  # 3x3, padding 1
    add = nodes["layer1.0.add"]
    assert [p for p, _ in add.producers] == [nodes["layer1.0.conv2"].index, nodes["conv1"].index]
    (fc_src, fc_need), = nodes["fc"].producers
    assert fc_src == nodes["avgpool"].index and fc_need == (0,)
    assert plan.output == nodes["fc"].index
    down = nodes["layer2.0.downsample"]
    assert down.producers[0][1][:3] == (0, 2, 4)  # 1x1 stride 2


def test_server_busy_times_are_the_work_booked_on_them():
    """A run's per-server busy time: the off-chip link's input channel carries every row of every
    image, each for the row plan's link time; the activations keep sigmoid units busy."""
    from xsim.engine import simulate_inference

    dep = Deployment.build(ROOT / "arch" / "isaac128.yaml", ROOT / "workloads" / "lenet5_mta.json")
    plan = build_plan(dep)
    images = 3
    result = simulate_inference(dep, images=images, record_timeline=False)
    source = plan.nodes[0]
    link = sum(row.busy_ps for row in source.row_plans)
    assert result.server_busy_ps["offchip[0]"] == images * link > 0
    sigmoid = sum(busy for name, busy in result.server_busy_ps.items() if name.startswith("sigmoid["))
    assert sigmoid > 0  # LeNet-5's conv and fc layers activate on their tiles' sigmoid units


def _niceness(_deployment) -> int:
    import os

    return os.nice(0)


def test_engine_workers_run_below_the_main_process():
    import os

    import pytest

    from xsim.engine.parallel import WORKER_NICENESS, EngineRuns

    arch = load_arch(ROOT / "arch" / "isaac128.yaml")
    dep = Deployment.of_mapping(map_network(arch, build_model("lenet5"), weight_bits=8, input_bits=8))
    with EngineRuns(dep, workers=2) as runs:
        if runs.workers < 2:
            pytest.skip("one usable core here: the runs stay in this process")
        assert runs.submit(_niceness).result() == min(19, os.nice(0) + WORKER_NICENESS)
