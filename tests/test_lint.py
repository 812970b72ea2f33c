"""``outreach templates lint``: the shipped library passes; each rule, given a bad
template, fails with the right file and line; ``config check`` refuses a step whose
template lint rejects."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import ROOT, letter_library, tiny_png  # noqa: I001 - tests/support.py
from typer.testing import CliRunner, Result

from orchestrator.cli import _register_all, app
from orchestrator.config.loading import check_config, load_config
from orchestrator.config.models import Config
from orchestrator.content.htmlcheck import html_problems
from orchestrator.content.template_lint import lint_templates
from orchestrator.errors import Problem

CONFIG = load_config(ROOT / "config")
FRONT = "---\ndescription: a test template\n---\n"  # the body starts on line 4
GOOD_SMS = "{{ creditor.name }}: {{ debtor.first_name }}, please pay {{ pay_link }}.{% if disclosure %} This is a communication from a debt collector.{% endif %} Reply STOP to opt out."


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def lint(root: Path, config: Config = CONFIG) -> list[Problem]:
    return lint_templates(root, config)


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.level == "error"]


def only(problems: list[Problem], level: str = "error") -> Problem:
    found = [p for p in problems if p.level == level]
    assert len(found) == 1, "\n".join(map(str, problems))
    return found[0]


def line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


# --- the shipped library -----------------------------------------------------------------


def test_the_shipped_library_passes() -> None:
    assert lint_templates(ROOT / "templates", CONFIG) == []


def test_cli_lint_passes_on_the_library_and_fails_with_exit_2(tmp_path: Path) -> None:
    _register_all()
    runner = CliRunner()
    ok = runner.invoke(
        app,
        [
            "templates",
            "lint",
            "--config",
            str(ROOT / "config"),
            "--templates",
            str(ROOT / "templates"),
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert "OK (0 warning(s))" in ok.stdout
    bad = write(tmp_path, "sms/hi.txt.j2", FRONT + GOOD_SMS.replace("please pay", "{{ amout }}"))
    result = runner.invoke(
        app, ["templates", "lint", "--config", str(ROOT / "config"), "--templates", str(tmp_path)]
    )
    assert result.exit_code == 2
    column = (FRONT + GOOD_SMS.replace("please pay", "{{ amout }}")).splitlines()[3].index("amout")
    assert f"{bad}:4:{column + 1}: error: undefined variable 'amout'" in result.stdout


def test_lint_by_name_and_channel_name(tmp_path: Path) -> None:
    write(tmp_path, "sms/good.txt.j2", GOOD_SMS)
    write(tmp_path, "sms/bad.txt.j2", "{{ creditor.name }} Reply STOP {{ nope }}")
    assert lint_templates(tmp_path, CONFIG, ["good"]) == []
    assert lint_templates(tmp_path, CONFIG, ["sms/good"]) == []
    assert errors(lint_templates(tmp_path, CONFIG, ["sms/bad"]))
    (missing,) = lint_templates(tmp_path, CONFIG, ["nosuch"])
    assert "no template named 'nosuch'" in missing.message


# --- one test per rule ---------------------------------------------------------------------


def test_undefined_variable_in_any_branch(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sms/hi.en-US.txt.j2",
        FRONT + GOOD_SMS + "\n{% if pay_link %}ok{% else %}{{ creditr.phone }}{% endif %}",
    )
    problem = only(lint(tmp_path))
    assert (problem.path, problem.line) == (str(path), 5)
    assert "undefined variable 'creditr'" in problem.message


def test_undefined_attribute_found_by_rendering(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sms/hi.zh-CN.txt.j2",
        FRONT + "\n" + GOOD_SMS.replace("{{ debtor.first_name }}", "{{ debtor.nmae }}"),
    )
    problem = only(lint(tmp_path))
    assert (problem.path, problem.line) == (str(path), 5)
    assert problem.message.startswith("undefined: debtor.nmae (did you mean name?)")


def test_a_misspelt_name_is_reported_at_its_column_with_a_suggestion(tmp_path: Path) -> None:
    body = "{{ creditor.name }}: Hi, pay {{ acount.balance }}. Reply STOP"
    path = write(tmp_path, "sms/hi.txt.j2", body)
    top = only(lint(tmp_path))
    assert top.message == "undefined variable 'acount' (did you mean account?)"
    assert (top.path, top.line, top.column) == (str(path), 1, body.index("acount") + 1)
    path.write_text("{{ creditor.name }}: Hi {{ debtor.frist_name }}. Reply STOP")
    attribute = only(lint(tmp_path))
    assert attribute.message.startswith("undefined: debtor.frist_name (did you mean first_name?)")


def test_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, "sms/hi.txt.j2", FRONT + GOOD_SMS + "\n{% if pay_link %}\nno end")
    problem = only(lint(tmp_path))
    assert problem.path == str(path) and problem.line is not None and problem.line >= 5
    assert "syntax error" in problem.message


def test_unknown_filter_is_reported_at_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sms/hi.txt.j2",
        FRONT + GOOD_SMS + "\n{{ account.balance | monney(account.currency) }}",
    )
    problem = only(lint(tmp_path))
    assert (problem.path, problem.line) == (str(path), 5)
    assert "No filter named 'monney'" in problem.message


def _one_short_report(result: Result, code: int) -> str:
    """The CLI's whole output, after checking it is the exit code given, no traceback and
    a few lines at most: what an operator reads."""
    output = str(result.output)
    assert result.exit_code == code, output
    assert isinstance(result.exception, (SystemExit, type(None))), output
    assert "Traceback" not in output and len(output.strip().splitlines()) <= 4, output
    return output


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("{{ account.balance | monney(account.currency) }}", 5, "No filter named 'monney'"),
        ("{% if pay_link %}\n{{ pay_link }", 6, "syntax error: unexpected '}'"),
    ],
)
def test_cli_lint_and_config_check_report_a_broken_template_as_file_line(
    tmp_path: Path, body: str, line: int, message: str
) -> None:
    """An unknown filter or a syntax error: ``FILE:LINE: error: message``, exit 2, no
    traceback, in ``templates lint`` and in ``config check`` (at the step's template)."""
    cfg, templates = tmp_path / "config", tmp_path / "templates"
    shutil.copytree(ROOT / "config", cfg)
    shutil.copytree(ROOT / "templates", templates)
    bad = write(templates, "sms/reminder.en-US.txt.j2", FRONT + GOOD_SMS + "\n" + body)
    _register_all()
    runner = CliRunner()
    linted = runner.invoke(
        app, ["templates", "lint", "reminder", "--config", str(cfg), "--templates", str(templates)]
    )
    assert f"{bad}:{line}: error: {message}" in _one_short_report(linted, 2)
    checked = runner.invoke(
        app, ["config", "check", "--config", str(cfg), "--templates", str(templates)]
    )
    step_line = line_of(cfg / "cadences.yaml", "template: reminder")
    out = _one_short_report(checked, 2)
    assert f"{cfg / 'cadences.yaml'}:{step_line}:" in out and f"{bad}:{line}: " in out


def test_required_content_from_policy_rules(tmp_path: Path) -> None:
    path = write(tmp_path, "sms/hi.txt.j2", FRONT + GOOD_SMS.replace(" Reply STOP to opt out.", ""))
    problem = only(lint(tmp_path))
    assert (problem.path, problem.line) == (str(path), 4)
    assert "sms-opt-out" in problem.message and "opt out" in problem.message


def test_chinese_opt_out_wording_counts(tmp_path: Path) -> None:
    write(
        tmp_path,
        "sms/hi.zh-CN.txt.j2",
        "【{{ creditor.name }}】{{ debtor.name }}您好，请还款{{ pay_link }}"
        "{% if disclosure %}本信息来自债务催收方。{% endif %}回复TD退订",
    )
    assert lint(tmp_path) == []


def test_email_needs_an_unsubscribe(tmp_path: Path) -> None:
    body = (
        "<p>{{ creditor.name }}: please pay.</p>{% if disclosure %}<p>This is a "
        "communication from a debt collector.</p>{% endif %}"
    )
    path = write(tmp_path, "email/hi.html.j2", FRONT + body)
    problem = only(lint(tmp_path))
    assert (problem.path, problem.line) == (str(path), 4)
    assert "email-unsubscribe" in problem.message
    path.write_text(FRONT + body + '<p><a href="{{ unsubscribe_link }}">Unsubscribe</a></p>')
    assert lint(tmp_path) == []


def test_debt_collector_disclosure_when_the_creditor_is_one(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sms/hi.txt.j2",
        FRONT + "{{ creditor.name }}: please pay {{ pay_link }}. Reply STOP to opt out.",
    )
    problem = only(lint(tmp_path))
    assert (problem.path, problem.line) == (str(path), 4)
    assert "debt-collector-disclosure" in problem.message
    assert "sample data: debt collector" in problem.message


def test_every_text_says_who_is_writing(tmp_path: Path) -> None:
    path = write(tmp_path, "sms/hi.txt.j2", FRONT + GOOD_SMS.replace("{{ creditor.name }}: ", ""))
    problem = only(lint(tmp_path))
    assert (problem.path, problem.line) == (str(path), 4)
    assert "who is writing" in problem.message


@pytest.mark.parametrize(
    ("wording", "category"),
    [
        ("Pay now or face ARREST.", "arrest"),
        ("We will call your employer.", "family, friends or employer"),
        ("This is the police department.", "impersonates"),
        ("Don't be a deadbeat.", "humiliating"),
        ("不还款就爆通讯录。", "family, friends or employer"),
        ("我们将通知公安机关。", "impersonates"),
        ("你这个老赖。", "humiliating"),
        ("否则将被拘留。", "arrest"),
    ],
)
def test_forbidden_wording_in_english_and_chinese(
    tmp_path: Path, wording: str, category: str
) -> None:
    path = write(tmp_path, "sms/hi.txt.j2", FRONT + GOOD_SMS + "\n\n" + wording)
    problem = only(lint(tmp_path))
    assert (problem.path, problem.line) == (str(path), 6)
    assert "forbidden wording" in problem.message and category in problem.message


def test_forbidden_wording_is_whole_words_in_english(tmp_path: Path) -> None:
    write(tmp_path, "sms/hi.txt.j2", FRONT + GOOD_SMS + " Your arrears are due; see our policies.")
    assert lint(tmp_path) == []


def test_policy_forbidden_phrases_are_added(tmp_path: Path) -> None:
    path = write(tmp_path, "sms/hi.txt.j2", FRONT + GOOD_SMS + "\nWe may Garnish your wages.")
    problem = only(lint(tmp_path))
    assert (problem.path, problem.line) == (str(path), 5)
    assert "forbidden by policy.yaml" in problem.message
    relaxed = CONFIG.model_copy(
        update={"policy": CONFIG.policy.model_copy(update={"forbidden": []})}
    )
    assert lint(tmp_path, relaxed) == []


def test_forbidden_wording_in_a_shared_layout_is_reported_there(tmp_path: Path) -> None:
    layout = write(
        tmp_path,
        "email/_layout.html.j2",
        "<html><body>\n<p>{{ creditor.name }}</p>\n{% block content %}{% endblock %}\n"
        "<p>Unpaid accounts go to the sheriff.</p>\n"
        '<p><a href="{{ unsubscribe_link }}">unsubscribe</a></p>\n</body></html>\n',
    )
    write(
        tmp_path,
        "email/hi.html.j2",
        FRONT + '{% extends "email/_layout.html.j2" %}\n{% block content %}<p>Please pay.'
        "{% if disclosure %} This is a communication from a debt collector.{% endif %}"
        "</p>{% endblock %}",
    )
    problem = only(lint(tmp_path))
    assert (problem.path, problem.line) == (str(layout), 4)
    assert "'sheriff'" in problem.message


def test_sms_length_warns_over_two_segments_and_fails_over_four(tmp_path: Path) -> None:
    filler = " Thanks." * 25  # ~200 characters more: 3 segments
    path = write(tmp_path, "sms/hi.txt.j2", FRONT + GOOD_SMS + filler)
    problem = only(lint(tmp_path), "warning")
    assert (problem.path, problem.line) == (str(path), 4)
    assert "3 segments" in problem.message and not errors(lint(tmp_path))
    path.write_text(FRONT + GOOD_SMS + filler * 3, encoding="utf-8")
    problem = only(lint(tmp_path))
    assert (problem.path, problem.line) == (str(path), 4)
    assert "segments" in problem.message and "never over 4" in problem.message


def test_chinese_sms_counts_ucs2_segments(tmp_path: Path) -> None:
    body = (
        "【{{ creditor.name }}】{{ debtor.name }}您好，请尽快还款。" * 8
        + "{% if disclosure %}本信息来自债务催收方。{% endif %}回复STOP退订"
    )
    path = write(tmp_path, "sms/hi.zh-CN.txt.j2", FRONT + body)
    problem = only(lint(tmp_path), "warning")
    assert (problem.path, problem.line) == (str(path), 4)
    assert "UCS-2" in problem.message


LETTER = """{{ creditor.name }} Tel. {{ creditor.phone }}
<p>Dear {{ debtor.name }},</p>
<p>Amount owed: {{ account.balance | money(account.currency) }}</p>
<p>Reference: {{ account.reference }}</p>
<p>Pay{% if deadline %} by {{ deadline | date("long") }}{% endif %} at {{ pay_link }} or to {{ creditor.bank_account }}.</p>
<p>Complaints: {{ creditor.complaints }}</p>
{% if disclosure %}<p>This is a communication from a debt collector.</p>{% endif %}
"""


@pytest.mark.parametrize(
    ("remove", "missing"),
    [
        ("<p>Reference: {{ account.reference }}</p>", "reference number"),
        ('{% if deadline %} by {{ deadline | date("long") }}{% endif %}', "payment deadline"),
        ("<p>Amount owed: {{ account.balance | money(account.currency) }}</p>", "amount owed"),
        ("<p>Complaints: {{ creditor.complaints }}</p>", "complaint channel"),
        (" at {{ pay_link }} or to {{ creditor.bank_account }}", "bank account or payment"),
    ],
)
def test_letters_missing_a_required_field(tmp_path: Path, remove: str, missing: str) -> None:
    write(tmp_path, "letter/ok.html.j2", FRONT + LETTER)
    assert lint(tmp_path) == []
    assert remove in LETTER
    path = write(tmp_path, "letter/ok.html.j2", FRONT + LETTER.replace(remove, ""))
    problem = only(lint(tmp_path))
    assert (problem.path, problem.line) == (str(path), 4)
    assert f"letter is missing the {missing}" in problem.message or missing in problem.message


def test_email_html_that_does_not_parse(tmp_path: Path) -> None:
    body = (
        "<p>{{ creditor.name }}: please pay.</p>\n<p>Now <strong>{{ pay_link }}</p>\n"
        '<p><a href="{{ unsubscribe_link }}">unsubscribe</a>'
        "{% if disclosure %} This is a communication from a debt collector.{% endif %}</p>\n"
    )
    path = write(tmp_path, "email/hi.en-US.html.j2", FRONT + body)
    problem = only(lint(tmp_path))
    assert (problem.path, problem.line) == (str(path), 5)
    assert "<strong>" in problem.message and "not closed" in problem.message


def test_html_checker() -> None:
    assert (
        html_problems(
            '<!DOCTYPE html><html><head><meta charset="utf-8"></head>'
            "<body><p>a<br>b<br/></p><img src=x></body></html>"
        )
        == []
    )
    assert html_problems("<div>\n<p>x</div>") == [
        (2, "<p> opened on line 2 is not closed before </div> on line 2")
    ]
    assert html_problems("<p>x</p>\n</span>") == [(2, "</span> closes no open <span>")]
    assert any("unterminated" in m for _, m in html_problems('<p>x</p><a href="y'))


def test_voicemail_is_limited_content(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "voice/hi_voicemail.txt.j2",
        FRONT + "This is {{ creditor.name }} for {{ debtor.name }}.\n"
        "It is about your overdue account. Call {{ creditor.phone | digits }}.",
    )
    problem = only(lint(tmp_path))
    assert (problem.path, problem.line) == (str(path), 5)
    assert "voicemail" in problem.message and "overdue" in problem.message


def test_call_says_nothing_of_the_debt_before_identification(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "voice/hi.zh-CN.txt.j2",
        FRONT + "您好，这里是{{ creditor.name }}，您有一笔欠款。请问是{{ debtor.name }}本人吗？\n\n"
        "{{ debtor.name }}您好，您的欠款为{{ account.balance | money(account.currency) }}。",
    )
    problem = only(lint(tmp_path))
    assert (problem.path, problem.line) == (str(path), 4)
    assert "before the person is identified" in problem.message
    path.write_text(
        FRONT + "您好，这里是{{ creditor.name }}。请问是{{ debtor.name }}本人吗？\n\n"
        "{{ debtor.name }}您好，您的欠款为{{ account.balance | money(account.currency) }}。",
        encoding="utf-8",
    )
    assert lint(tmp_path) == []


def test_a_template_file_of_the_wrong_kind_is_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, "sms/hi.html.j2", GOOD_SMS)
    problem = only(lint(tmp_path), "warning")
    assert problem.path == str(path) and "never used" in problem.message


# --- config check ---------------------------------------------------------------------------


def test_config_check_fails_when_a_step_names_a_template_lint_rejects(tmp_path: Path) -> None:
    cfg = tmp_path / "config"
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "config", cfg)
    shutil.copytree(ROOT / "templates", templates)
    assert check_config(cfg, templates) == []
    bad = templates / "sms" / "promise_broken.zh-CN.txt.j2"
    bad.write_text(bad.read_text(encoding="utf-8") + "\n否则我们将联系您的家人。", encoding="utf-8")
    problems = [p for p in check_config(cfg, templates) if p.level == "error"]
    assert problems, "config check accepted a template that lint rejects"
    line = line_of(cfg / "cadences.yaml", "template: promise_broken")
    assert {(p.path, p.line) for p in problems} == {(str(cfg / "cadences.yaml"), line)}
    assert all("promise-broken" in p.message and "家人" in p.message for p in problems)
    assert f"{bad}:" in problems[0].message

    _register_all()
    result = CliRunner().invoke(
        app, ["config", "check", "--config", str(cfg), "--templates", str(templates)]
    )
    assert result.exit_code == 2
    assert f"{cfg / 'cadences.yaml'}:{line}:" in result.stdout


# --- templates that would stall the daemon ------------------------------------------------


def _outreach(*args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """The real command in a process of its own, and how long it took: what its user
    sees, a traceback included if there is one."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    return result, time.monotonic() - started


def _library_with(tmp_path: Path, rel: str, extra: str) -> tuple[Path, Path, Path]:
    """A copy of the shipped configuration and templates, with ``extra`` at the end of
    the last line of template ``rel``: (config, templates, the edited file)."""
    cfg, templates = tmp_path / "config", tmp_path / "templates"
    shutil.copytree(ROOT / "config", cfg)
    shutil.copytree(ROOT / "templates", templates)
    bad = templates / rel
    bad.write_text(bad.read_text(encoding="utf-8").rstrip("\n") + extra + "\n", encoding="utf-8")
    return cfg, templates, bad


def test_a_huge_power_is_a_lint_error_at_its_line_quickly(tmp_path: Path) -> None:
    """``{{ 9 ** 9999999 }}`` took 19 s and ended in a traceback through Jinja's constant
    folding; now lint names the file and line at once and exits 2."""
    cfg, templates, bad = _library_with(
        tmp_path, "sms/reminder.en-US.txt.j2", " {{ 9 ** 9999999 }}"
    )
    line = len(bad.read_text(encoding="utf-8").splitlines())
    result, seconds = _outreach(
        "templates", "lint", "--config", str(cfg), "--templates", str(templates)
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{bad}:{line}: error: 9 ** 9999999 would have about" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert seconds < 10, seconds  # with the interpreter's start; it was 19 s and more


def test_config_check_reports_a_huge_power_without_a_traceback(tmp_path: Path) -> None:
    cfg, templates, bad = _library_with(
        tmp_path, "sms/reminder.en-US.txt.j2", " {{ 9 ** 9999999 }}"
    )
    line = len(bad.read_text(encoding="utf-8").splitlines())
    result, seconds = _outreach(
        "config", "check", "--config", str(cfg), "--templates", str(templates)
    )
    assert result.returncode == 2, result.stdout + result.stderr
    step_line = line_of(cfg / "cadences.yaml", "template: reminder,")
    assert f"{cfg / 'cadences.yaml'}:{step_line}:" in result.stdout
    assert f"{bad}:{line}: 9 ** 9999999 would have about" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert seconds < 10, seconds


# --- what a letter may load when it is printed -------------------------------------------


def test_a_letter_that_loads_a_file_or_the_network_is_an_error_at_its_line(tmp_path: Path) -> None:
    """The printer fetched every URL of a letter: an attachment of the daemon's own
    environment (its keys) and an image from the network passed lint. Now each is an
    error where it is written; files under the template directory and data: URLs pass."""
    templates = tmp_path / "templates"
    layout = letter_library(
        templates,
        head='<link rel="attachment" href="file:///proc/self/environ">',
        body='<img src="http://127.0.0.1:9/logo.png" alt=""><img src="logo.png" alt="">'
        '<img src="data:image/png;base64,iVBORw0KGgo=" alt="">',
    )
    (templates / "letter" / "logo.png").write_bytes(tiny_png())
    problems = lint_templates(templates, CONFIG, ["letter/demand_letter"])
    found = {(p.path, p.line, p.level) for p in problems}
    assert found == {
        (str(layout), line_of(layout, "environ"), "error"),
        (str(layout), line_of(layout, "127.0.0.1:9"), "error"),
    }, problems
    environ = next(p for p in problems if "environ" in p.message)
    assert "'file:///proc/self/environ'" in environ.message
    assert "outside the template directory" in environ.message

    _register_all()
    result = CliRunner().invoke(
        app, ["templates", "lint", "--config", str(ROOT / "config"), "--templates", str(templates)]
    )
    assert result.exit_code == 2
    assert (
        f"{layout}:{line_of(layout, 'environ')}: error: the printer would not load" in result.stdout
    )
    assert f"{layout}:{line_of(layout, '127.0.0.1:9')}: error:" in result.stdout


@pytest.mark.parametrize(
    ("written", "why"),
    [
        ('<link rel="stylesheet" href="../../secret.css">', "outside the template directory"),
        ('<style>@import "https://fonts.example.com/a.css";</style>', "on the network"),
        (
            "<style>@font-face { font-family: X; src: url(ftp://example.com/x.ttf); }</style>",
            "on the network",
        ),
        ("<div style=\"background: url('file:///etc/passwd')\"></div>", "outside the template"),
        ('<a rel="attachment" href="//example.com/x.bin">x</a>', "another host"),
        ('<img src="{{ creditor.pay_url }}.png" alt="">', "as rendered with the sample data"),
    ],
)
def test_every_kind_of_url_the_printer_fetches_is_checked(
    tmp_path: Path, written: str, why: str
) -> None:
    templates = tmp_path / "templates"
    layout = letter_library(templates, body=written)
    problem = only(lint_templates(templates, CONFIG, ["letter/demand_letter"]))
    assert (problem.path, problem.line) == (str(layout), line_of(layout, written[:12]))
    assert why in problem.message, problem.message


def test_a_link_in_the_template_directory_to_a_file_outside_is_refused(tmp_path: Path) -> None:
    """A symbolic link is followed before it is judged: it cannot lead outside."""
    templates = tmp_path / "templates"
    layout = letter_library(templates, head='<link rel="attachment" href="notes.txt">')
    (tmp_path / "secret.txt").write_text("s3cret", encoding="utf-8")
    (templates / "letter" / "notes.txt").symlink_to(tmp_path / "secret.txt")
    problem = only(lint_templates(templates, CONFIG, ["letter/demand_letter"]))
    assert (problem.path, problem.line) == (str(layout), line_of(layout, "notes.txt"))
    assert "outside the template directory" in problem.message
