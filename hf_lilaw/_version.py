"""The package version, in a module of its own so that nothing needs to import `hf_lilaw` to read it."""

__version__ = "0.1.0"
