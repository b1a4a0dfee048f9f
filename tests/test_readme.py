"""The README's Python examples run as written, in order, in one namespace (``docs/design.md``)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_python_examples_run(capsys):
    assert len(BLOCKS) >= 3
    namespace = {"__name__": "readme"}
    for i, code in enumerate(BLOCKS):
        exec(compile(code, f"README python block {i}", "exec"), namespace)
    assert "PASS" in capsys.readouterr().out  # the rate-checker example passes
