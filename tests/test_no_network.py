"""The guard in conftest.py: a test that tries to download fails at once, with a clear message."""
import socket
import urllib.request

import pytest


def test_the_suite_cannot_reach_the_network():
    with pytest.raises(RuntimeError, match="must never download"):
        urllib.request.urlopen("https://download.pytorch.org/models/resnet18-f37072fd.pth", timeout=2)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s, pytest.raises(RuntimeError, match="never download"):
        s.connect(("93.184.216.34", 80))


def test_loopback_stays_allowed():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(("localhost", server.getsockname()[1]), timeout=2):
            pass
