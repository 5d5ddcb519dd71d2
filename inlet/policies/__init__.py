"""inlet's side of the policy: services that act on what the policy package decides.

The policy package itself (schema, lfn2pfn, permissions) is ``rucio_inlet`` (rucio-inlet/), which
Rucio loads; this package keeps what inlet runs, such as the embargo release.
"""
