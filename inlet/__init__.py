"""inlet: a Rucio-centric data-lake integration kit for physics experiments."""

__version__ = "0.1.0"
