"""Configuration: schema, loaders and errors for architecture and workload files."""
