"""``inlet lake``: a real local data lake on 127.0.0.1.

Every service is a real process started by :class:`inlet.lake.lake.Lake`, with its own log
and pid file under the lake's state directory. Nothing here is imported by code that runs
inside Rucio.
"""
