"""Loading libllmk: the ABI check, and the lookup order, each variant in a fresh interpreter that
imports a copy of the package from a temporary directory."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import llmk
from llmk._library import LibraryLoadError, check_abi_version

PACKAGE_DIR = Path(llmk.__file__).resolve().parent


def test_matching_abi_version_is_accepted():
    check_abi_version(0, 0)


def test_other_abi_version_is_refused():
    with pytest.raises(LibraryLoadError) as info:
        check_abi_version(1, 0, library="/opt/llmk/libllmk.so")
    message = str(info.value)
    assert "/opt/llmk/libllmk.so has ABI version 1" in message
    assert "written for ABI version 0" in message
    assert isinstance(info.value, ImportError)


@pytest.fixture
def package_copy(tmp_path):
    """A copy of the llmk package with no library beside it; returns its parent directory."""
    shutil.copytree(PACKAGE_DIR, tmp_path / "llmk",
                    ignore=shutil.ignore_patterns("__pycache__", "libllmk.so*"))
    return tmp_path


def import_llmk(path_entry, llmk_library=None):
    """Imports llmk in a fresh interpreter; returns (exit code, library_path() or the error)."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("LLMK_LIBRARY", "LD_LIBRARY_PATH")}
    env["PYTHONPATH"] = str(path_entry)
    if llmk_library is not None:
        env["LLMK_LIBRARY"] = str(llmk_library)
    result = subprocess.run(
        [sys.executable, "-c", "import llmk; print(llmk.library_path())"],
        cwd=path_entry, env=env, capture_output=True, text=True, timeout=60)
    return result.returncode, (result.stdout.strip() if result.returncode == 0 else result.stderr)


@pytest.fixture
def library_file():
    path = Path(llmk.library_path())
    if not path.is_file():
        pytest.skip("this session's libllmk was found by name, not by path")
    return path


def test_bogus_llmk_library_is_a_clear_error(package_copy, library_file):
    # A library does lie beside the package: a bad LLMK_LIBRARY must not fall back to it.
    shutil.copy(library_file, package_copy / "llmk" / "libllmk.so.0")
    bogus = package_copy / "no" / "libllmk.so"
    code, error = import_llmk(package_copy, bogus)
    assert code != 0
    assert "LibraryLoadError" in error and f"{bogus} (LLMK_LIBRARY)" in error


def test_library_that_is_not_llmk(package_copy):
    code, error = import_llmk(package_copy, "libm.so.6")
    assert code != 0
    assert "libm.so.6 does not export llmk_abi_version" in error


def test_library_beside_the_package(package_copy, library_file):
    beside = package_copy / "llmk" / "libllmk.so.0"
    shutil.copy(library_file, beside)
    assert import_llmk(package_copy) == (0, str(beside))
    # LLMK_LIBRARY comes first.
    assert import_llmk(package_copy, library_file) == (0, str(library_file))


def test_no_library_anywhere_lists_where_it_looked(package_copy):
    code, error = import_llmk(package_copy)
    if code == 0:
        pytest.skip(f"the dynamic loader finds a libllmk on this machine: {error}")
    assert "LibraryLoadError" in error
    assert f"{package_copy / 'llmk' / 'libllmk.so.0'} (beside the llmk package)" in error
    assert "libllmk.so.0 (dynamic loader)" in error
    assert "LLMK_LIBRARY" in error  # the hint says how to point at one
