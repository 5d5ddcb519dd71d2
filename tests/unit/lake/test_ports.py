from __future__ import annotations

import os
import socket

import pytest

from inlet.lake.errors import LakeError
from inlet.lake.ports import answers, ensure_free, free_port, is_free


def test_taken_port_names_owner_and_setting() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not is_free(port) and answers(port)
        with pytest.raises(LakeError) as err:
            ensure_free(port, "redis", "INLET_REDIS__URL")
    assert f"pid {os.getpid()}" in str(err.value)
    assert "fix:" in str(err.value) and "INLET_REDIS__URL" in str(err.value)


def test_free_port_is_free() -> None:
    port = free_port()
    assert is_free(port) and not answers(port)
