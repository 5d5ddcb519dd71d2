"""``inlet rehearse``: EGO/Virgo's first data-lake dress rehearsal, replayed on this lake.

A synthetic DAQ writes 1-second strain chunks into a directory; inlet's uploader takes them to
site A; rules replicate them to site B; there, an event-driven downloader (inlet's
``file-registered``, Rucio's ``transfer-done``) and the rehearsal's original "layman's"
polling downloader fetch and verify every chunk side by side. Every chunk's timestamps are
kept, and the report says where the latency goes, hop by hop.

The rehearsal is a client of the lake, like an experiment's own tools: it reaches the uploader
through the broker-fed Celery queue and its public API, and Rucio through its REST API and
storage protocols.
"""
