"""Configuration: schema, loaders and errors for architecture and workload files."""

from xsim.config.arch import Arch
from xsim.config.errors import ConfigError, MappingError, XsimInputError
from xsim.config.loader import build_network, load_arch, load_workload, resolve_path
from xsim.config.workload import STRATEGIES, TaskSpec, Workload

__all__ = [
    "STRATEGIES",
    "Arch",
    "ConfigError",
    "MappingError",
    "TaskSpec",
    "Workload",
    "XsimInputError",
    "build_network",
    "load_arch",
    "load_workload",
    "resolve_path",
]
