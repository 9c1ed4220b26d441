"""Packaging invariants: every package is shipped, configs travel with the wheel,
and CI runs the README's test command."""
import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_package_is_listed():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts)
             for p in (REPO / "socialmeta").rglob("__init__.py")}
    assert found | {"socialmeta.configs"} == listed


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"\*\*Run the tests\*\*.*?```bash\n(.*?)\n```", readme, re.S)
    assert len(blocks) == 1
    assert blocks[0].strip() in (REPO / ".ci" / "run").read_text()
