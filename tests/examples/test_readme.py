"""The README's first pipeline runs as printed, and prints the output the README shows."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_example_runs_and_prints_what_it_says(tmp_path):
    text = README.read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S)
    assert code is not None
    shown = re.search(r"```text\n(.*?)```", text[code.end() :], re.S)
    assert shown is not None, "the README shows the pipeline's output in a text block after it"
    script = tmp_path / "readme_example.py"
    script.write_text(code.group(1))
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.splitlines() == ["warehouse closed with 3 rows", "84"]
    assert shown.group(1).splitlines()[-1] == "84"
    assert "warehouse closed with 3 rows" in shown.group(1)
    log = result.stderr.splitlines()
    for shown_line in shown.group(1).splitlines():
        if shown_line.startswith("[cascade] ") and " run " not in shown_line:
            # the shown lines, minus the times that differ from run to run
            stem = re.sub(r" in [\d.]+s$", "", shown_line)
            assert any(line.startswith(stem) for line in log), shown_line
    assert sum("fetch[" in line and "succeeded" in line for line in log) == 3


def test_readme_links_name_files_of_the_repository():
    # The README is read on the repository host: its relative links must name real files.
    text = re.sub(r"```.*?```", "", README.read_text(), flags=re.S)
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    relative = [t for t in targets if not re.match(r"[a-z]+:", t)]
    assert len(relative) > 20
    missing = [t for t in relative if not (README.parent / t).exists()]
    assert not missing, f"README links to files that do not exist: {missing}"
