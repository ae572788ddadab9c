"""xsim: a cycle-level simulator of ReRAM-crossbar DNN accelerators and of multi-task adaptation."""

__version__ = "0.1.0"
