"""The trigger condition language: parsing, canonical form, evaluation and error columns."""

from __future__ import annotations

import math

import pytest

from engine.config.conditions import Condition, ConditionError, parse_condition, series_key

# --- parsing and canonical form ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("response_time > 30000 OR status_code >= 500", "response_time > 30000 OR status_code >= 500"),
        ("error_rate > 10%", "error_rate > 10%"),
        ("a>1 and b<2", "a > 1 AND b < 2"),
        ("a > 1 && b < 2 || c == 3", "a > 1 AND b < 2 OR c == 3"),
        ("a > 1 AND (b < 2 OR c == 3)", "a > 1 AND (b < 2 OR c == 3)"),
        ("(a > 1)", "a > 1"),
        ("((a > 1))", "a > 1"),
        ("x = 1.50", "x == 1.5"),
        ("not ok", "NOT ok"),
        ("!ok", "NOT ok"),
        ("NOT (a > 1 OR b > 2)", "NOT (a > 1 OR b > 2)"),
        ("NOT NOT ok", "NOT NOT ok"),
        ("a > 1 or (b > 2 or c > 3)", "a > 1 OR b > 2 OR c > 3"),
        ("500 <= status_code", "500 <= status_code"),
        ("x > -2.5", "x > -2.5"),
        ("x >= 1e3", "x >= 1000"),
        ("x < .5", "x < 0.5"),
        ("x != 0", "x != 0"),
        ("ok == true", "ok == 1"),
        ("node.load1 > 4", "node.load1 > 4"),
        ("job:requests:rate5m > 100", "job:requests:rate5m > 100"),
        ('up{job="api"} == 0', 'up{job="api"} == 0'),
        ('up{ job = "api" , instance="a:9100", } < 1', 'up{instance="a:9100",job="api"} < 1'),
        ('q{path="say \\"hi\\""} > 0', 'q{path="say \\"hi\\""} > 0'),
        ("Response_Time > 1", "Response_Time > 1"),
    ],
)
def test_canonical_form_round_trips(text: str, canonical: str) -> None:
    condition = parse_condition(text)
    assert str(condition) == canonical
    again = parse_condition(str(condition))
    assert again == condition
    assert str(again) == canonical


def test_keywords_are_case_insensitive_and_spellings_are_equal() -> None:
    spellings = [
        "a > 1 AND NOT b < 2 OR c >= 3",
        "a > 1 and not b < 2 or c >= 3",
        "a>1 && !b<2 || c>=3",
        "(a > 1 And Not (b < 2)) Or (c >= 3)",
    ]
    parsed = [parse_condition(s) for s in spellings]
    assert all(p == parsed[0] for p in parsed)
    assert str(parsed[0]) == "a > 1 AND NOT b < 2 OR c >= 3"


def test_precedence_and_binds_tighter_than_or() -> None:
    c = parse_condition("a > 0 OR b > 0 AND c > 0")
    assert str(c) == "a > 0 OR b > 0 AND c > 0"
    assert c.evaluate({"a": 1, "b": 0, "c": 0}) is True
    assert c.evaluate({"a": 0, "b": 1, "c": 0}) is False
    grouped = parse_condition("(a > 0 OR b > 0) AND c > 0")
    assert grouped.evaluate({"a": 1, "b": 0, "c": 0}) is False
    assert str(grouped) == "(a > 0 OR b > 0) AND c > 0"


def test_variables() -> None:
    c = parse_condition('response_time > 30000 OR status_code >= 500 AND NOT ok OR up{job="api"} < 1')
    assert c.variables == frozenset({"response_time", "status_code", "ok", 'up{job="api"}'})
    assert {s.name for s in c.series} == {"response_time", "status_code", "ok", "up"}
    assert parse_condition("true").variables == frozenset()


def test_series_key_is_canonical() -> None:
    assert series_key("up") == "up"
    assert series_key("up", {}) == "up"
    assert series_key("up", {"job": "api", "instance": "a"}) == 'up{instance="a",job="api"}'
    assert series_key("up", {"b": "x", "a": "y"}) == series_key("up", {"a": "y", "b": "x"})
    key = series_key("up", {"job": "api", "instance": "a"})
    assert parse_condition(f"{key} > 0").variables == {key}


def test_percent_is_the_plain_number() -> None:
    assert parse_condition("error_rate > 10%") == parse_condition("error_rate > 10")
    c = parse_condition("error_rate > 10%")
    assert c.evaluate({"error_rate": 10.5}) is True
    assert c.evaluate({"error_rate": 10}) is False
    assert c.evaluate({"error_rate": 0.5}) is False  # a fraction is not a percentage
    assert parse_condition("error_rate >= 2.5%").evaluate({"error_rate": 2.5}) is True


# --- evaluation ------------------------------------------------------------------------------

OPS = [
    (">", [False, False, True]),
    (">=", [False, True, True]),
    ("<", [True, False, False]),
    ("<=", [True, True, False]),
    ("==", [False, True, False]),
    ("=", [False, True, False]),
    ("!=", [True, False, True]),
]


@pytest.mark.parametrize(("op", "expected"), OPS)
def test_comparison_truth_table(op: str, expected: list[bool]) -> None:
    c = parse_condition(f"x {op} 5")
    assert [c.evaluate({"x": v}) for v in (4, 5, 6)] == expected
    # Number on the left mirrors the comparison.
    mirrored = parse_condition(f"5 {op} x")
    assert [mirrored.evaluate({"x": v}) for v in (6, 5, 4)] == expected


def test_two_variables_compare_with_each_other() -> None:
    c = parse_condition("latency_p99 > latency_slo")
    assert c.evaluate({"latency_p99": 300, "latency_slo": 250}) is True
    assert c.evaluate({"latency_p99": 200, "latency_slo": 250}) is False
    assert c.evaluate({"latency_p99": 300}) is False


@pytest.mark.parametrize(
    ("a", "b", "and_", "or_"),
    [
        (True, True, True, True),
        (True, False, False, True),
        (False, True, False, True),
        (False, False, False, False),
    ],
)
def test_boolean_truth_table(a: bool, b: bool, and_: bool, or_: bool) -> None:
    values = {"a": 1 if a else 0, "b": 1 if b else 0}
    assert parse_condition("a == 1 AND b == 1").evaluate(values) is and_
    assert parse_condition("a == 1 OR b == 1").evaluate(values) is or_
    assert parse_condition("NOT (a == 1 AND b == 1)").evaluate(values) is (not and_)
    assert parse_condition("NOT (a == 1 OR b == 1)").evaluate(values) is (not or_)


def test_spec_example_domain_down() -> None:
    c = parse_condition("response_time > 30000 OR status_code >= 500")
    assert c.evaluate({"response_time": 120, "status_code": 200}) is False
    assert c.evaluate({"response_time": 31000, "status_code": 200}) is True
    assert c.evaluate({"response_time": 120, "status_code": 503}) is True
    assert c.evaluate({"response_time": 30000, "status_code": 499}) is False
    # A timeout has no status code: the other comparison still decides.
    assert c.evaluate({"response_time": 31000, "status_code": None}) is True
    assert c.evaluate({"response_time": None, "status_code": 500}) is True


def test_missing_values_never_fire() -> None:
    assert parse_condition("x > 1").evaluate({}) is False
    assert parse_condition("x > 1").evaluate({"x": None}) is False
    assert parse_condition("x > 1").evaluate({"x": math.nan}) is False
    assert parse_condition("x < 1").evaluate({"y": 0}) is False
    # NOT of unknown stays unknown, so no data never looks like a breach.
    assert parse_condition("NOT x > 1").evaluate({}) is False
    assert parse_condition("NOT ok").evaluate({}) is False
    assert parse_condition("NOT ok").truth({}) is None
    # ... but a definite answer elsewhere still decides.
    assert parse_condition("x > 1 OR y > 1").evaluate({"y": 2}) is True
    assert parse_condition("x > 1 AND y > 1").truth({"y": 0}) is False
    assert parse_condition("x > 1 AND y > 1").truth({"y": 2}) is None
    assert parse_condition("NOT (x > 1 AND y > 1)").evaluate({"y": 0}) is True


def test_bare_variable_and_booleans() -> None:
    assert parse_condition("ok").evaluate({"ok": 1}) is True
    assert parse_condition("ok").evaluate({"ok": 0}) is False
    assert parse_condition("NOT ok").evaluate({"ok": False}) is True
    assert parse_condition("NOT ok").evaluate({"ok": True}) is False
    assert parse_condition("ok == false").evaluate({"ok": 0}) is True
    assert parse_condition("true").evaluate({}) is True
    assert parse_condition("false OR x > 1").evaluate({"x": 2}) is True


def test_labelled_series_is_looked_up_by_its_key() -> None:
    c = parse_condition('up{job="api"} == 0')
    assert c.evaluate({'up{job="api"}': 0}) is True
    assert c.evaluate({"up": 0}) is False


def test_evaluate_accepts_non_float_values_without_crashing() -> None:
    c = parse_condition("x > 1")
    assert c.evaluate({"x": "not a number"}) is False  # type: ignore[dict-item]
    assert c.evaluate({"x": 2}) is True


def test_condition_is_hashable_and_immutable() -> None:
    c = parse_condition("a > 1")
    assert {c: 1}[parse_condition("a>1")] == 1
    with pytest.raises(AttributeError):
        c.root = None  # type: ignore[misc]
    assert isinstance(c, Condition)


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("", 1, "empty"),
        ("   ", 1, "empty"),
        ("response_time > ", 17, "expected a number or a variable after '>'"),
        ("response_time > OR x", 17, "after '>'"),
        ("a > 1 AND", 10, "after 'AND'"),
        ("a > 1 OR OR b > 2", 10, "after 'OR'"),
        ("(a > 1", 7, "to close the '(' at column 1"),
        ("a > 1 AND ((b > 2)", 19, "to close the '(' at column 11"),
        ("a > 1)", 6, "unmatched ')'"),
        (")", 1, "unmatched ')'"),
        ("()", 2, "empty parentheses"),
        ("a => 3", 3, "did you mean '>='"),
        ("a =< 3", 3, "did you mean '<='"),
        ("a <> 3", 3, "did you mean '!='"),
        ("a > 1 & b > 2", 7, "did you mean '&&'"),
        ("a > 1 | b > 2", 7, "did you mean '||'"),
        ("a 5", 3, "expected a comparison operator"),
        ("5", 2, "expected a comparison operator after '5'"),
        ("1 > 2", 1, "both sides are numbers"),
        ("a < b < c", 7, "cannot be chained"),
        ("a > 1 b > 2", 7, "expected AND, OR"),
        ("a > $", 5, "unexpected character '$'"),
        ("x > 10s", 7, "unexpected 's' after the number 10"),
        ("x > 1.2.3", 8, "after the number"),
        ("x > 10%%", 8, "after the number"),
        ('x > "500"', 5, "quoted text"),
        ("> 5", 1, "before '>'"),
        ("NOT", 4, "after 'NOT'"),
        ("a > 1 AND NOT", 14, "after 'NOT'"),
        ("x{job=api} > 1", 7, "quoted label value"),
        ('x{job="api" > 1', 13, "expected ',' or '}'"),
        ('x{job="api} > 1', 7, "unterminated"),
        ('x{="a"} > 1', 3, "label name"),
        ('x{a="1",a="2"} > 1', 11, "given twice"),
        ('x{job=="a"} > 1', 6, "single '='"),
        ('x{job=~"a.*"} > 1', 6, "single '='"),
        ("x{job} > 1", 6, "expected '=' after label 'job'"),
    ],
)
def test_error_columns(text: str, column: int, fragment: str) -> None:
    with pytest.raises(ConditionError) as info:
        parse_condition(text)
    error = info.value
    assert error.column == column, str(error)
    assert fragment in error.message
    assert str(error) == f"column {column}: {error.message}"


def test_error_str_shape() -> None:
    with pytest.raises(ConditionError) as info:
        parse_condition("status_code > ")
    assert str(info.value).startswith("column 15: expected a number or a variable after '>'")


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises(ConditionError, match="nested too deeply"):
        parse_condition("(" * 500 + "a > 1" + ")" * 500)
    with pytest.raises(ConditionError, match="nested too deeply"):
        parse_condition("NOT " * 500 + "ok")
    assert parse_condition("(" * 30 + "a > 1" + ")" * 30).evaluate({"a": 2}) is True


def test_overlong_condition_is_refused() -> None:
    with pytest.raises(ConditionError, match="longer than"):
        parse_condition(" OR ".join(["a > 1"] * 2000))


def test_never_evaluates_python() -> None:
    for text in ("__import__('os').system('true')", "a > 1; import os", "exec('x')", "a.__class__ > 1 AND b"):
        try:
            c = parse_condition(text)
        except ConditionError:
            continue
        # If it parses at all, it is only a series lookup.
        assert c.evaluate({}) is False


@pytest.mark.parametrize("text", ["¹x > 1", "x > ²", "x > -³", "x > .⁴"])
def test_digits_that_are_no_decimal_digits_are_a_condition_error(text: str) -> None:
    with pytest.raises(ConditionError):
        parse_condition(text)
