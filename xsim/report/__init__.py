"""Reports: tables, files (written atomically) and plots of a simulation's results."""
