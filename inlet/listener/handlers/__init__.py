"""Built-in handlers; experiments add their own through the ``inlet.handlers`` entry points."""
