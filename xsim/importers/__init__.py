"""Importers: networks from other tools' files as xsim layer graphs and weights."""
