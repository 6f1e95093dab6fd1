"""The Prometheus rules in deploy/prometheus: valid (`promtool check rules`), unit-tested
(`promtool test rules`, every alert shown firing and staying quiet), and each alert documented
in docs/runbooks.md.

The mutation tests prove the unit tests bite: every rule, with the metric names of its
expression misspelt, must make `promtool test rules` fail. A rule no test looks at, or looks
at only where it stays quiet, would pass unchanged.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "rules"
RULE_TESTS = PROMETHEUS / "tests"
RUNBOOKS = ROOT / "docs" / "runbooks.md"

# What the SLO and alerts promise (docs/runbooks.md, "Service level objectives").
SEVERITIES = {"critical", "warning"}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool not installed (Debian package prometheus; .ci/run installs it)")
    return found


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *map(str, args)], capture_output=True, text=True, check=False, cwd=cwd
    )


def rule_files() -> list[Path]:
    return sorted(RULES.glob("*.yml"))


def unit_test_files() -> list[Path]:
    return sorted(RULE_TESTS.glob("*_test.yml"))


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def all_rules() -> list[dict[str, Any]]:
    return [
        rule for path in rule_files() for group in load(path)["groups"] for rule in group["rules"]
    ]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in all_rules() if "alert" in rule]


def runbook_sections() -> dict[str, str]:
    """`## Heading` sections of docs/runbooks.md by GitHub anchor (lowercase, no spaces)."""
    sections: dict[str, str] = {}
    for block in re.split(r"^## ", RUNBOOKS.read_text(), flags=re.MULTILINE)[1:]:
        heading, _, body = block.partition("\n")
        sections[re.sub(r"[^a-z0-9 -]", "", heading.strip().lower()).replace(" ", "-")] = body
    return sections


def test_prometheus_loads_every_rule_file() -> None:
    config = load(PROMETHEUS / "prometheus.yml")
    loaded = {path for pattern in config["rule_files"] for path in PROMETHEUS.glob(pattern)}
    assert loaded == set(rule_files())
    assert {path.name for path in loaded} >= {"recording.yml", "alerts.yml"}


def test_the_rules_are_valid() -> None:
    result = run("check", "rules", *rule_files())
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rule_unit_tests_pass() -> None:
    result = run("test", "rules", *unit_test_files())
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_shown_firing_and_quiet() -> None:
    """Each alert has a test case that expects it firing and one that expects nothing."""
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in unit_test_files():
        for case in load(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert names - fires == set(), "alerts no test shows firing"
    assert names - quiet == set(), "alerts no test shows staying quiet"


def test_every_alert_has_a_severity_a_summary_and_a_runbook_section() -> None:
    sections = runbook_sections()
    names = [rule["alert"] for rule in alerts()]
    assert len(names) == len(set(names)), "an alert name is used twice"
    for rule in alerts():
        name = rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert rule["annotations"]["summary"], name
        anchor = name.lower()
        assert rule["annotations"]["runbook_url"] == f"docs/runbooks.md#{anchor}", name
        assert anchor in sections, f"docs/runbooks.md has no '## {name}' section"
        body = sections[anchor]
        for part in ("**What it means.**", "**How to check.**", "**What to do.**"):
            assert part in body, f"the runbook of {name} lacks {part}"


# Enough of PromQL to find the metric names in an expression: strings, label matchers, ranges
# and grouping clauses removed, what remains that is not a function, keyword or number is a
# metric (or recording rule) name.
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_BRACES = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_NAME = re.compile(r"(?<![\w.:])([A-Za-z_:][A-Za-z0-9_:]*)(?![\w:]|\s*\()")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left"}
    | {"group_right", "inf", "nan", "atan2", "start", "end"}
)


def metric_names(expression: str) -> set[str]:
    text = _STRINGS.sub('""', expression)
    text = _BRACES.sub("", text)
    text = _RANGES.sub("", text)
    text = _GROUPING.sub("", text)
    return {name for name in _NAME.findall(text) if name.lower() not in _KEYWORDS}


def test_metric_names_are_found_in_expressions() -> None:
    assert metric_names(
        'sum by (job) (rate(a_total{x="b c", y=~"d|e"}[5m])) / on (job) group_left b:c:d'
        " > bool 1e3 and c offset 5m or histogram_quantile(0.9, d_bucket) unless max(e) by (f)"
    ) == {"a_total", "b:c:d", "c", "d_bucket", "e"}


def _misspell(expression: str) -> str:
    for name in sorted(metric_names(expression), key=len, reverse=True):
        expression = re.sub(
            rf"(?<![\w:]){re.escape(name)}(?![\w:])", f"{name}_misspelt", expression
        )
    return expression


def _rule_name(rule: dict[str, Any]) -> str:
    return str(rule.get("alert") or rule["record"])


def _tests_of(rule: dict[str, Any]) -> list[Path]:
    """The unit-test files that can notice `rule`: those naming it (an alert's `alertname`, a
    recording rule in an expression), or naming an alert that reads the recording rule."""
    name = _rule_name(rule)
    readers = {name} | {alert["alert"] for alert in alerts() if name in metric_names(alert["expr"])}
    return [
        path for path in unit_test_files() if any(reader in path.read_text() for reader in readers)
    ]


def _with_misspelt_rule(rule_name: str, into: Path) -> subprocess.CompletedProcess[str]:
    """`promtool test rules` on a copy of deploy/prometheus with the one rule misspelt."""
    copy = into / "prometheus"
    shutil.copytree(PROMETHEUS, copy)
    tests: list[Path] = []
    for path in sorted((copy / "rules").glob("*.yml")):
        data = load(path)
        for group in data["groups"]:
            for rule in group["rules"]:
                if _rule_name(rule) == rule_name:
                    rule["expr"] = _misspell(rule["expr"])
                    tests = [copy / "tests" / test.name for test in _tests_of(rule)]
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert tests, f"no unit-test file can notice {rule_name}"
    checked = run("check", "rules", *sorted((copy / "rules").glob("*.yml")))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    return run("test", "rules", *tests)


@pytest.fixture(scope="module")
def misspelt_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    """Every rule misspelt in turn, run side by side: promtool spends most of a test run
    waiting, not computing, so this takes seconds instead of minutes on two cores."""
    promtool()
    names = sorted({_rule_name(rule) for rule in all_rules()})
    places = [tmp_path_factory.mktemp("misspelt") for _ in names]  # not thread-safe
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = pool.map(_with_misspelt_rule, names, places)
        return {name: result.returncode for name, result in zip(names, results, strict=True)}


@pytest.mark.parametrize("rule_name", sorted({_rule_name(rule) for rule in all_rules()}))
def test_the_unit_tests_fail_when_a_rule_reads_a_misspelt_metric(
    rule_name: str, misspelt_results: dict[str, int]
) -> None:
    assert misspelt_results[rule_name] != 0, f"no unit test noticed {rule_name} reading nothing"
