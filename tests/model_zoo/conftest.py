import pytest


@pytest.fixture(scope="session")
def zoo_cache(tmp_path_factory):
    """One zoo cache directory for the whole run, so each model is built once."""
    path = tmp_path_factory.mktemp("zoo-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("SPARKONNX_CACHE", str(path))
    yield path
    mp.undo()
