"""pipeline/beam.py: TFX's package for the Beam workers is built once, and nothing it builds is left behind."""

import os
import tarfile
import tempfile

import pytest
from tfx import version
from tfx.utils import dependency_utils

from pipeline import beam


@pytest.fixture
def home_and_temp(tmp_path, monkeypatch):
    """A TFDET_HOME and a system temporary directory of the test's own, both empty."""
    home, temp = tmp_path / "home", tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setenv("TFDET_HOME", str(home))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return home, temp


def test_tfx_package_is_tfx_own_sdist_built_once_into_the_cache_leaving_no_temporary_files(home_and_temp,
                                                                                           monkeypatch):
    home, temp = home_and_temp
    (flag,) = beam.tfx_package_args(beam.beam_args("direct"))
    path = flag.split("=", 1)[1]
    assert flag.startswith("--extra_package=")
    assert path == str(home / "tfx" / f"tfx_ephemeral-{version.__version__}.tar.gz")
    with tarfile.open(path) as archive:
        names = archive.getnames()
    assert f"tfx_ephemeral-{version.__version__}/setup.py" in names
    assert any(name.endswith("/tfx/dsl/components/base/base_beam_executor.py") for name in names)
    assert os.listdir(temp) == []  # TFX's builder alone leaves a 49 MB build tree here

    def build_again():
        raise AssertionError("built a second time")

    monkeypatch.setattr(dependency_utils, "build_ephemeral_package", build_again)
    assert beam.tfx_package_args(beam.beam_args("in-memory")) == [flag]
    # and TFX, seeing it, builds nothing of its own
    args = beam.beam_args("direct") + [flag]
    assert dependency_utils.make_beam_dependency_flags(args) == args


@pytest.mark.parametrize("option", beam.TFX_DEPENDENCY_OPTIONS)
def test_workers_dependencies_named_by_the_user_are_left_as_they_are(option, home_and_temp, monkeypatch):
    home, _ = home_and_temp
    args = beam.beam_args("direct", extra=[f"{option}=their-own"])
    assert beam.tfx_package_args(args) == []
    assert not (home / "tfx").exists()
    # TFX's own rule agrees: with this option it stages nothing of its own
    monkeypatch.setattr(dependency_utils, "build_ephemeral_package", lambda: pytest.fail("TFX would build"))
    assert dependency_utils.make_beam_dependency_flags(args) == args
