"""Mapping: crossbar grids, PE grouping, tiles, tier-2 column indices, replication."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conftest import ARCH, WORKLOADS
from xsim.cli import main
from xsim.config import MappingError, build_network, load_arch
from xsim.mapping import map_network
from xsim.models import network_from_spec
from xsim.models.zoo import ZOO


def one_layer(k_in: int, n_out: int, kernel: int = 1):
    return network_from_spec("one", (k_in, 8, 8), [
        {"name": "conv", "kind": "conv", "out_channels": n_out, "kernel": kernel,
         "padding": kernel // 2}])


@pytest.mark.parametrize("encoding", ["offset", "differential"])
@pytest.mark.parametrize(("cin", "cout", "kernel", "bits"), [
    (3, 64, 7, 8), (64, 64, 3, 8), (512, 2048, 1, 8), (5, 3, 1, 16), (256, 100, 3, 4)])
def test_grid_closed_form(encoding, cin, cout, kernel, bits):
    arch = load_arch(ARCH / "isaac128.yaml", {"crossbar.encoding": encoding})
    m = map_network(arch, one_layer(cin, cout, kernel), weight_bits=bits)
    lm = m.layers[0]
    K = cin * kernel * kernel
    magnitude = bits - 1 if encoding == "differential" else bits
    cols = math.ceil(magnitude / 2) * (2 if encoding == "differential" else 1)
    wpr = 128 // cols
    assert (K, cout) == (lm.K, lm.N)
    assert lm.row_blocks == math.ceil(K / 128)
    assert lm.col_blocks == math.ceil(cout / wpr)
    assert m.crossbars == m.arrays == lm.row_blocks * lm.col_blocks
    # Every PE holds at most 8 crossbars; together they tile the K x N matrix exactly once.
    covered = 0
    for pe in m.pes:
        assert 1 <= pe.arrays <= arch.arrays_per_pe
        covered += (pe.row_stop - pe.row_start) * (pe.col_stop - pe.col_start)
    assert covered == K * cout
    assert sum(pe.arrays for pe in m.pes) == m.arrays
    assert m.used_cells() == K * cout * cols


def test_pe_grouping_stacks_rows_then_packs_columns(isaac128):
    deep = map_network(isaac128, one_layer(512, 64, 3), weight_bits=8)  # K=4608: 36 row blocks
    lm = deep.layers[0]
    assert (lm.row_blocks, lm.col_blocks, lm.row_blocks_per_pe, lm.col_blocks_per_pe) == (36, 2, 8, 1)
    assert len(deep.pes) == 2 * 5
    assert [p.arrays for p in deep.pes[:5]] == [8, 8, 8, 8, 4]
    shallow = map_network(isaac128, one_layer(64, 256, 1), weight_bits=8)  # 1 row block, 8 col blocks
    lm = shallow.layers[0]
    assert (lm.row_blocks, lm.col_blocks, lm.col_blocks_per_pe) == (1, 8, 8)
    assert len(shallow.pes) == 1 and shallow.pes[0].arrays == 8


def test_tier2_column_indices_are_dense_and_stable(isaac128, resnet50_workload):
    network = build_network(resnet50_workload)
    m = map_network(isaac128, network, weight_bits=8, input_bits=8)
    offsets = [p.tier2_offset for p in m.pes]
    expected = 0
    for p, off in zip(m.pes, offsets):
        assert off == expected
        expected += p.weight_columns
    assert m.tier2_columns == expected
    # PEs are numbered in layer order and fill tiles in order.
    assert [p.index for p in m.pes] == list(range(len(m.pes)))
    assert all(p.tile == p.index // 12 and p.slot == p.index % 12 for p in m.pes)
    assert [p.layer_index for p in m.pes] == sorted(p.layer_index for p in m.pes)
    assert m == map_network(isaac128, network, weight_bits=8, input_bits=8)


def test_resnet50_crossbar_counts(isaac128, resnet50_workload):
    network = build_network(resnet50_workload)
    offset = map_network(isaac128, network, weight_bits=8)
    diff = map_network(load_arch(ARCH / "isaac128.yaml", {"crossbar.encoding": "differential"}),
                       network, weight_bits=8)
    # DESIGN: about 12.5 k crossbars with differential encoding, fewer than 16,128.
    assert 12_000 < diff.crossbars < 13_000
    assert offset.crossbars * 2 == pytest.approx(diff.crossbars, rel=0.01)
    # 64x64 needs about 4x as many crossbars.
    small = map_network(load_arch(ARCH / "isaac64.yaml", {"crossbar.encoding": "differential"}),
                        network, weight_bits=8)
    assert 45_000 < small.crossbars < 55_000


def test_replication_uses_spare_pes_on_the_slowest_layers(isaac128, resnet50_workload):
    network = build_network(resnet50_workload)
    plain = map_network(isaac128, network, weight_bits=8)
    rep = map_network(isaac128, network, weight_bits=8, replication=True)
    assert plain.pe_count < rep.pe_count <= isaac128.pes_per_chip
    first = rep.layers[0]
    assert first.replicas > 1 and first.layer.name == "conv1"
    assert all(lm.replicas >= 1 for lm in rep.layers)
    assert rep.tier2_columns == plain.tier2_columns
    assert all(p.tier2_offset == -1 for p in rep.pes if p.replica > 0)


def test_map_cli_json(capsys):
    assert main(["map", str(ARCH / "isaac128.yaml"), str(WORKLOADS / "lenet5_mta.json"),
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["layer"] for r in data["layers"]] == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert data["total"]["pes"] == sum(r["pes"] for r in data["layers"])


def test_does_not_fit_names_source(isaac128, resnet50_workload):
    tiny = load_arch(ARCH / "isaac128.yaml", {"hierarchy.tiles_per_chip": 1})
    with pytest.raises(MappingError, match="needs 861 PEs"):
        map_network(tiny, build_network(resnet50_workload), weight_bits=8, source="w.json")


def _packed_arrays(layer, rows: int, array_columns: int, cpw: int, unit: int) -> int:
    """Arrays of one layer, counted by placing its groups one by one (the docstring's rule):
    a group that fits one array goes block-diagonally into the open array while both its rows
    and its columns (with a unit column of its own under offset encoding) are free."""
    groups = layer.groups
    kg = layer.in_channels // groups * layer.kernel[0] * layer.kernel[1]
    ng = layer.out_channels // groups
    wpr = array_columns // cpw
    if kg > rows or ng > wpr:
        return groups * math.ceil(kg / rows) * math.ceil(ng / wpr)
    arrays, rows_free, cols_free = 0, 0, 0
    for _ in range(groups):
        need = ng * cpw + (unit if arrays and rows_free < rows else 0)
        if rows_free < kg or cols_free < need:
            arrays, rows_free, cols_free = arrays + 1, rows, array_columns
            need = ng * cpw
        rows_free -= kg
        cols_free -= need
    return arrays


@pytest.mark.parametrize("encoding", ["offset", "differential"])
def test_mobilenetv2_grouped_layers_pack_block_diagonally(encoding):
    arch = load_arch(ARCH / "isaac128.yaml", {"crossbar.encoding": encoding})
    network = ZOO["mobilenetv2"]()
    m = map_network(arch, network, weight_bits=8)
    cpw = arch.columns_per_weight(8)
    unit = 1 if encoding == "offset" else 0
    depthwise = 0
    for lm in m.layers:
        assert lm.arrays == _packed_arrays(lm.layer, 128, 128, cpw, unit), lm.layer.name
        depthwise += lm.groups > 1
        for pid in lm.pes:
            for used_rows, used_cols in m.pe_arrays(m.pes[pid]):
                assert used_rows <= 128 and used_cols <= 128 + unit
    assert depthwise == 17
    # A 3x3 depthwise layer of 96 channels: 14 groups of 9 rows per 128-row array, not 1 array.
    lm = m.layer("features.2.conv.1")
    assert (lm.groups_per_array, lm.arrays) == (14, 7)
    assert m.used_cells(lm) == 9 * 96 * cpw


def test_grouped_pe_reads_every_group_inputs(isaac128):
    net = network_from_spec("g", (32, 8, 8), [
        {"name": "conv", "kind": "conv", "out_channels": 32, "kernel": 3, "padding": 1,
         "groups": 4}])
    m = map_network(isaac128, net, weight_bits=8)
    lm = m.layers[0]
    # Kg = 8·9 = 72 rows: one group per array (2·72 > 128); four arrays in one PE.
    assert (lm.K, lm.groups_per_array, lm.arrays, len(lm.pes)) == (72, 1, 4, 1)
    pe = m.pes[0]
    assert m.pe_inputs(pe) == tuple((g, 0, 72) for g in range(4))
    assert m.pe_arrays(pe) == ((72, 8 * 4 + 1),) * 4


@pytest.mark.parametrize(("model", "replication"), [("resnet50", True), ("mobilenetv2", False)])
def test_first_instance_pes_tile_each_layer_once(isaac128, model, replication):
    """The reprogramming model rewrites a layer's first-instance PEs in one parallel kernel call
    (:func:`xsim.kernels.writes.write_costs`), which needs their windows of the layer's cell-level
    matrix to be disjoint: they tile it exactly once, grouped layers included; replicas repeat
    their first instance's window."""
    m = map_network(isaac128, ZOO[model](), weight_bits=8, replication=replication)
    cpw = m.columns_per_weight
    for lm in m.layers:
        cover = np.zeros((lm.K, lm.N * cpw), np.int64)
        for pid in lm.pes[: lm.pes_per_replica]:
            pe = m.pes[pid]
            cover[pe.row_start:pe.row_stop, pe.col_start * cpw:pe.col_stop * cpw] += 1
        assert (cover == 1).all(), lm.layer.name
        for i, pid in enumerate(lm.pes):
            pe, first = m.pes[pid], m.pes[lm.pes[i % lm.pes_per_replica]]
            assert ((pe.row_start, pe.row_stop, pe.col_start, pe.col_stop)
                    == (first.row_start, first.row_stop, first.col_start, first.col_stop))
