"""Puppet Master backend: the Puppet-Master model, generation pipeline, service and tools."""

__version__ = "0.1.0"
