"""``inlet follow EXPR``: every file a selection names, once, as soon as it is available.

- :mod:`inlet.follow.source`: the stream (catalogue availability rows by position) and the gap rule;
- :mod:`inlet.follow.feed`: a named, durable broker subscription, the wake-up;
- :mod:`inlet.follow.follower`: the iterator that joins them, with a durable cursor.
"""
