"""Suite-wide guard: no test reaches the network (CI machines have none, and tests never
download). Loopback and Unix sockets stay allowed (torchrun's gloo rendezvous, Jupyter kernels)."""
from __future__ import annotations

import atexit
import ipaddress
import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest
import torch

_connect, _getaddrinfo = socket.socket.connect, socket.getaddrinfo
os.environ["FA3D_OFFLINE"] = "1"   # fa3d itself never tries to fetch (YuNet's model); notebooks' kernels inherit it
# fa3d's cache (the ONNX graphs FaceAligner traces) in a folder of this session, so the many small test runs
# leave nothing in the user's; the test of a fetched detector model looks in the user's (USER_FA3D_CACHE)
USER_FA3D_CACHE = Path(os.environ.get("FA3D_CACHE") or Path.home() / ".cache" / "fa3d")
os.environ["FA3D_CACHE"] = tempfile.mkdtemp(prefix="fa3d-test-cache-")
atexit.register(shutil.rmtree, os.environ["FA3D_CACHE"], ignore_errors=True)


def _is_local(host) -> bool:
    if host in (None, "localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost
        return False


def _refuse(what):
    raise RuntimeError(f"a test tried to reach the network ({what}); tests must never download")


def _connect_local_only(sock, address):
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
        _refuse(address)
    return _connect(sock, address)


def _getaddrinfo_local_only(host, *args, **kwargs):
    if isinstance(host, bytes):
        host = host.decode()
    if not _is_local(host):
        _refuse(host)
    return _getaddrinfo(host, *args, **kwargs)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", _connect_local_only)
    monkeypatch.setattr(socket, "getaddrinfo", _getaddrinfo_local_only)


@pytest.fixture(scope="module")
def one_thread():
    """torch on one thread for a module's tests (``pytestmark = pytest.mark.usefixtures("one_thread")``),
    then the thread count it had."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
