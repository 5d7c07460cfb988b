"""Every ```python block of the README runs (vector-quantize-pytorch tests its README too)."""
import re

import pytest
from helpers import REPO

BLOCKS = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)


def test_readme_has_snippets():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_snippet_runs(code):
    exec(compile(code, "README.md", "exec"), {})
