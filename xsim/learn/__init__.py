"""XMA2 mask learning (the optional ``learn`` extra, PyTorch): learn both tiers of task masks for a
real network on real data on the simulator's own PE structure, measure the accuracy / write-cost
frontier against the baselines, and export files ``xsim run`` consumes.

The simulator never imports this package (nor torch); import it only where learning is asked for.
"""

from xsim.learn.run import run_learn
from xsim.learn.spec import LearnSpec, load_learn_spec

__all__ = ["LearnSpec", "load_learn_spec", "run_learn"]
