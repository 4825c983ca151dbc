from pathlib import Path

import pytest

import llmk


def pytest_report_header(config):
    return (f"llmk binding {Path(llmk.__file__).parent}, library {llmk.library_path()} "
            f"(version {llmk.version()}, ABI {llmk.abi_version()}), "
            f"CUDA devices: {llmk.cuda_device_count()}")


@pytest.fixture
def cpu():
    with llmk.Context.cpu() as ctx:
        yield ctx


@pytest.fixture
def cuda():
    if llmk.cuda_device_count() == 0:
        pytest.skip("no CUDA device")
    with llmk.Context.cuda(0) as ctx:
        yield ctx
