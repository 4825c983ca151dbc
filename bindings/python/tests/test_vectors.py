"""Every case of tests/vectors/manifest.txt, on the CPU context and on CUDA device 0."""
import pytest

import llmk
from vector_cases import VECTORS_DIR, load_cases, run_case


@pytest.fixture(scope="module", params=["cpu", "cuda"])
def context(request):
    if request.param == "cuda" and llmk.cuda_device_count() == 0:
        pytest.skip("no CUDA device")
    ctx = llmk.Context.cpu() if request.param == "cpu" else llmk.Context.cuda(0)
    yield ctx
    ctx.close()


def test_manifest_is_not_empty():
    assert load_cases(), f"no cases in {VECTORS_DIR / 'manifest.txt'}"


@pytest.mark.parametrize("case", load_cases(), ids=lambda case: case["name"])
def test_vector(context, case):
    problems = run_case(context, case)
    assert not problems, "\n".join(problems)
