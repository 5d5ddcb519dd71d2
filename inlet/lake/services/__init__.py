"""One module per lake service; :func:`inlet.lake.lake.build_services` lists them in start order."""
