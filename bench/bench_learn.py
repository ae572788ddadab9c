"""Mask-learning speed: one task of the digits demo under every strategy at a 10 % PE budget.

Prints, per strategy, the training wall time and milliseconds per optimiser step, the float and
bit-accurate crossbar accuracy and the cells written per switch, so a change in the method shows
up beside the timing.  Needs the ``learn`` extra.  Run: ``.venv/bin/python bench/bench_learn.py``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from xsim.config import load_arch
from xsim.deployment import Deployment
from xsim.learn.data import build_tasks
from xsim.learn.evaluate import cells_written, crossbar_accuracy
from xsim.learn.method import (
    PeStructure,
    TaskModel,
    export_result,
    float_accuracy,
    strategy_config,
    train_backbone,
    train_task,
)
from xsim.learn.spec import LEARN_STRATEGIES, load_learn_spec
from xsim.mapping import map_network
from xsim.models import network_from_spec

ROOT = Path(__file__).resolve().parent.parent


def main(budget: float = 0.1) -> None:
    torch.set_num_threads(1)
    spec = load_learn_spec(ROOT / "workloads" / "learn_digits.json")
    arch = load_arch(ROOT / "arch" / "isaac128.yaml", spec.arch_overrides)
    network = network_from_spec(spec.model.name, spec.model.input_shape,
                                [dict(layer) for layer in spec.model.layers])
    mapping = map_network(arch, network, **spec.precision)
    dep = Deployment.of_mapping(mapping)
    structure = PeStructure(dep)
    source, tasks = build_tasks(spec.data)
    bt, tt = spec.backbone_training, spec.task_training
    start = time.perf_counter()
    backbone = train_backbone(network, source.x_train, source.y_train, epochs=bt.epochs,
                              batch=bt.batch, lr=bt.lr, weight_bits=mapping.weight_bits, seed=0)
    print(f"backbone: {time.perf_counter() - start:.2f} s for {bt.epochs} epochs")
    task = tasks[0]
    steps = tt.epochs * math.ceil(len(task.y_train) / tt.batch)
    for strategy in LEARN_STRATEGIES:
        config = strategy_config(strategy, structure, budget, 0)
        model = TaskModel(backbone, structure, config, tier2_format=spec.tier2.format,
                          tier2_bits=spec.tier2.bits, weight_bits=mapping.weight_bits)
        start = time.perf_counter()
        train_task(model, task.x_train, task.y_train, epochs=tt.epochs, batch=tt.batch, lr=tt.lr,
                   weight_lr=tt.weight_lr, scale_lr=tt.scale_lr, freeze_fraction=tt.freeze_fraction,
                   seed=0)
        train_s = time.perf_counter() - start
        result = export_result(model, backbone)
        start = time.perf_counter()
        crossbar = crossbar_accuracy(dep, backbone, result, task.x_train[:64], task.x_test,
                                     task.y_test)
        eval_s = time.perf_counter() - start
        print(f"{task.name} {strategy:13s} train {train_s:5.2f} s ({1000 * train_s / steps:5.2f} ms/step)"
              f"  crossbar eval {eval_s:5.2f} s  float {float_accuracy(model, task.x_test, task.y_test):.3f}"
              f"  crossbar {crossbar:.3f}  cells {cells_written(dep, backbone, result)}")


if __name__ == "__main__":
    main()
