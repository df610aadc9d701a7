"""Fixtures: dev certificates once per run, and per test the processes and links it starts,
all stopped when the test ends whatever its outcome."""
import pytest

import processes


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("certs"))
    processes.Server(d).stop()  # --dev-certs creates them before it listens
    return d


@pytest.fixture
def make_server(certs):
    """make_server(*flags) -> a running lifeline-server (--echo by default)."""
    started = []

    def start(*flags):
        s = processes.Server(certs, *flags)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def server(make_server):
    return make_server()


@pytest.fixture
def fake(certs):
    f = processes.FakeServer(certs)
    yield f
    f.close()


@pytest.fixture
def make_cat(certs, fake):
    """make_cat(*flags) -> lifeline-cat connecting to the fake server."""
    started = []

    def start(*flags, **kw):
        c = processes.Cat(certs, fake.port, *flags, **kw)
        started.append(c)
        return c

    yield start
    for c in started:
        c.kill()
