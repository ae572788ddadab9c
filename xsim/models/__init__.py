"""Model zoo: layer graphs of the networks xsim maps onto crossbars."""

from xsim.models.graph import Layer, Network

__all__ = ["Layer", "Network"]
