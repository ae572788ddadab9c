"""Errors a user can cause with an input file. The CLI turns each into one message and exit code 2."""

from __future__ import annotations


class XsimInputError(Exception):
    """A problem with an input the user gave: names the file, the key path and what was expected."""

    def __init__(self, path: str | None, key: str | None, message: str) -> None:
        self.path = path
        self.key = key
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.path or "<input>"
        if self.key:
            where += f": {self.key}"
        return f"{where}: {self.message}"


class ConfigError(XsimInputError):
    """A malformed or inconsistent architecture or workload file."""


class MappingError(XsimInputError):
    """A model that does not fit the chip, or a mapping request the architecture cannot serve."""
