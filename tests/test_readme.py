"""CI must run exactly the test command README.rst gives a fresh machine."""

from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_ci_runs_the_readme_test_command_verbatim():
    readme = (ROOT / "README.rst").read_text()
    commands = [line.strip() for line in readme.splitlines() if line.startswith("    python3 -m venv .venv")]
    assert len(commands) == 2, commands  # one for the demo, one for the tests
    demo, tests = commands
    assert "demo/run_demo.py" in demo and "pytest" in tests
    assert tests in (ROOT / ".ci" / "run").read_text().splitlines()


def sections(readme: str) -> list[str]:
    lines = readme.splitlines()
    return [lines[i] for i in range(len(lines) - 1)
            if lines[i].strip() and set(lines[i + 1]) == {"-"} and len(lines[i + 1]) == len(lines[i])]


def test_a_newcomer_reads_what_it_is_the_two_commands_then_the_quickstart_then_the_reference():
    readme = (ROOT / "README.rst").read_text()
    order = sections(readme)
    assert order[:2] == ["Two commands on a fresh machine", "Quickstart"], order
    assert order.index("Defining jobs") < order.index("Wire format"), order
    intro = readme.split("\n\n")[1]  # after the title: what pyresque is
    assert len(intro.splitlines()) <= 5, intro
