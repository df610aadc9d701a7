"""The spec and the suite stay in step: every rule in docs/protocol.md has a test named after
it, and every test names a rule that exists. A rule is defined where its id opens a list
item in bold (`- **[LL-HELLO-3]** ...`); elsewhere ids are only references."""
import ast
import glob
import os
import re

import wire

SPEC = os.path.join(wire.ROOT, "docs", "protocol.md")
DEFINED = re.compile(r"^- \*\*\[(LL-[A-Z]+-\d+)\]\*\*", re.M)
MENTIONED = re.compile(r"\bLL-[A-Z]+-\d+\b")
TEST_NAME = re.compile(r"^test_(LL_[A-Z]+_\d+)(?:_|$)")


def spec_rules():
    text = open(SPEC, encoding="utf-8").read()
    ids = DEFINED.findall(text)
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    assert not dupes, f"rules defined twice in docs/protocol.md: {dupes}"
    return set(ids), set(MENTIONED.findall(text))


def suite_tests():
    """{rule id: [test names]} from every test module here (parsed, not imported)."""
    found = {}
    for path in glob.glob(os.path.join(os.path.dirname(__file__), "test_*.py")):
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            m = isinstance(node, ast.FunctionDef) and TEST_NAME.match(node.name)
            if m:
                found.setdefault(m.group(1).replace("_", "-"), []).append(node.name)
    return found


def test_every_rule_has_a_test_and_every_test_a_rule():
    rules, mentioned = spec_rules()
    tests = suite_tests()
    assert len(rules) > 40, f"only {len(rules)} rules parsed from {SPEC}: is the format intact?"
    assert not sorted(rules - tests.keys()), f"rules without a test: {sorted(rules - tests.keys())}"
    assert not sorted(tests.keys() - rules), f"tests naming no rule: {sorted(tests.keys() - rules)}"
    assert not sorted(mentioned - rules), f"references to undefined rules: {sorted(mentioned - rules)}"
    doubled = {r: t for r, t in tests.items() if len(t) > 1}
    assert not doubled, f"one test per rule: {doubled}"
