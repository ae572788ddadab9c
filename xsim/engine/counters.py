"""Action counters: component → action → count, attributed to layers.

Every process of the engine (and any process added later, such as a reprogramming controller)
counts into one :class:`Counters`. Two ways in: :meth:`Counters.add` adds a count directly;
:meth:`Counters.register` declares a fixed per-unit vector (the actions of one MVM of a layer
replica) and :meth:`Counters.tally` adds units of it — one integer add per event on the hot path,
expanded into actions only when the totals are read. Counts are exact integers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

Key = tuple[str, str]


class Counters:
    def __init__(self) -> None:
        self._direct: dict[tuple[str, str, str], int] = {}
        self._vectors: list[tuple[str, tuple[tuple[Key, int], ...]]] = []
        self._units: list[int] = []

    def add(self, layer: str, component: str, action: str, count: int) -> None:
        key = (layer, component, action)
        self._direct[key] = self._direct.get(key, 0) + count

    def add_all(self, layer: str, counts: Mapping[Key, int], times: int = 1) -> None:
        direct = self._direct
        for (component, action), n in counts.items():
            key = (layer, component, action)
            direct[key] = direct.get(key, 0) + n * times

    def register(self, layer: str, per_unit: Mapping[Key, int]) -> int:
        """Declare a per-unit action vector of ``layer``; returns the id to :meth:`tally` it by."""
        self._vectors.append((layer, tuple(per_unit.items())))
        self._units.append(0)
        return len(self._vectors) - 1

    def replace(self, source: int, per_unit: Mapping[Key, int]) -> None:
        """Give a registered vector other actions per unit (its units tallied so far stay)."""
        layer, _ = self._vectors[source]
        self._vectors[source] = (layer, tuple(per_unit.items()))

    def tally(self, source: int, units: int = 1) -> None:
        self._units[source] += units

    def items(self) -> Iterator[tuple[str, str, str, int]]:
        """(layer, component, action, count) for every non-zero count."""
        merged = dict(self._direct)
        for (layer, vector), units in zip(self._vectors, self._units):
            if units:
                for (component, action), n in vector:
                    key = (layer, component, action)
                    merged[key] = merged.get(key, 0) + n * units
        for (layer, component, action), n in sorted(merged.items()):
            if n:
                yield layer, component, action, n

    def totals(self) -> dict[str, dict[str, int]]:
        """component → action → count, over all layers."""
        out: dict[str, dict[str, int]] = {}
        for _, component, action, n in self.items():
            actions = out.setdefault(component, {})
            actions[action] = actions.get(action, 0) + n
        return out

    def by_layer(self) -> dict[str, dict[Key, int]]:
        """layer → (component, action) → count."""
        out: dict[str, dict[Key, int]] = {}
        for layer, component, action, n in self.items():
            out.setdefault(layer, {})[(component, action)] = n
        return out

    def count(self, component: str, action: str, layer: str | None = None) -> int:
        return sum(n for lay, c, a, n in self.items()
                   if c == component and a == action and (layer is None or lay == layer))
