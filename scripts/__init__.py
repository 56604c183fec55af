"""Checks and hooks run by nox, CI and the docs build; not shipped."""
