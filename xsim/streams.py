"""Every random stream of xsim, named in one place.

A stream's generator is seeded from ``SeedSequence([seed, stream id, *key])``: the user's seed,
the stream's own id from :data:`STREAMS` and the stream's key (a task index, a layer index, an
image). Ids are distinct, so no two streams can draw the same numbers whatever the keys are (a
layer index can no longer coincide with another stream's tag on a network with many layers).

=========================  ====  ==========================================================
stream                     id    key
=========================  ====  ==========================================================
``task.weight_change``     101   task index, layer index: synthetic task-weight changes
``task.head``              102   task index: a new task's synthetic head
``task.tier1``             103   task index: tier-1 PE selection (``random`` policy, ties)
``task.tier2_scales``      104   task index: synthetic tier-2 scales
``task.pe_gain``           105   task index: the (task, PE) gains of the synthetic changes
``device.variation``       201   layer index, conv group: device-to-device variation
``device.program``         202   layer index, conv group, program: programming error
``device.drift``           203   layer index, conv group: drift exponents
``device.faults``          204   layer index, conv group: stuck-at faults at manufacture
``device.endurance``       205   layer index, conv group: each cell's endurance
``learn.split``            17    (none): the stratified train/test split
``learn.permutation``      23    task position: a ``permute`` task's pixel permutation
``learn.random_tier1``     31    PE count: the random tier-1 baseline's PEs
``learn.task``             41    task index: one training seed per task
``study.split``            51    data-set id: the study's stratified three-way split
``study.glyph``            52    task id, split, font, class, copy: one rendered glyph
``study.train``            53    study seed, task, strategy id, grid point: one training run
``study.random_tier1``     54    study seed, task, PE count: the random tier-1 baseline's PEs
=========================  ====  ==========================================================

Two older streams keep the layouts they were built with, because a change would move every
figure computed from them: synthetic backbone weights
(``SeedSequence(seed, spawn_key=(layer position,))``, :func:`synthetic_weights`) and the
functional model's read noise and synthetic images (:func:`read_noise_seed`,
:func:`synthetic_images`). They are built here too.
"""

from __future__ import annotations

import numpy as np

STREAMS = {
    "task.weight_change": 101,
    "task.head": 102,
    "task.tier1": 103,
    "task.tier2_scales": 104,
    "task.pe_gain": 105,
    "device.variation": 201,
    "device.program": 202,
    "device.drift": 203,
    "device.faults": 204,
    "device.endurance": 205,
    "learn.split": 17,
    "learn.permutation": 23,
    "learn.random_tier1": 31,
    "learn.task": 41,
    "study.split": 51,
    "study.glyph": 52,
    "study.train": 53,
    "study.random_tier1": 54,
}


def seed_sequence(seed: int, stream: str, *key: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([int(seed), STREAMS[stream], *(int(k) for k in key)])


def rng(seed: int, stream: str, *key: int) -> np.random.Generator:
    """The generator of ``stream`` for ``seed`` and ``key``."""
    return np.random.default_rng(seed_sequence(seed, stream, *key))


def synthetic_weights(seed: int, position: int) -> np.random.Generator:
    """Synthetic backbone weights of the layer at ``position`` in the network."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(position),)))


def synthetic_images(seed: int) -> np.random.Generator:
    """The functional model's synthetic input images."""
    return np.random.default_rng(int(seed))


def read_noise_seed(seed: int, layer: int, image: int, group: int) -> int:
    """The kernel seed of the read noise of one layer, image and PE row group."""
    return int(np.random.SeedSequence((seed, layer, image, group)).generate_state(1, np.uint64)[0])
