"""The Jinja2 templates the engine renders: every one compiles, a missing variable fails loudly
rather than printing nothing, and values are escaped and cleaned of control characters."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import jinja2
import pytest

from engine.core.templating import environment
from engine.rest.statuspage_render import ButtonForm, Links, render_message

ENGINE = Path(__file__).resolve().parents[1] / "engine"


def test_every_template_file_compiles_in_its_environment():
    from engine.learning import report_svg
    from engine.rest import statuspage_render

    envs = {"rest": statuspage_render.templates, "learning": report_svg.templates}
    files = {(f.relative_to(ENGINE).parts[:-1], f) for f in ENGINE.rglob("templates/**/*") if f.is_file()}
    compiled = 0
    for path, file in sorted(files):
        owner = "/".join(path[: path.index("templates")]) or "."
        assert owner in envs, f"{file}: no environment renders it"
        name = file.relative_to(ENGINE.joinpath(*path[: path.index("templates") + 1])).as_posix()
        envs[owner].get_template(name)  # raises on a syntax error or an unknown filter
        compiled += 1
    assert compiled >= 12


def test_a_missing_variable_fails_instead_of_printing_nothing(tmp_path):
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "page.html").write_text("<p>{{ title }} {{ misspelt }}</p>")
    env = environment(str(tmp_path / "module.py"))
    with pytest.raises(jinja2.UndefinedError, match="misspelt"):
        env.get_template("page.html").render(title="x")


def test_escaping_and_cleaning_apply_to_html_xml_and_svg_but_not_text(tmp_path):
    (tmp_path / "templates").mkdir()
    for ext in ("html", "xml", "svg", "txt"):
        (tmp_path / "templates" / f"t.{ext}").write_text("{{ v }}|{{ n }}")
    env = environment(str(tmp_path / "module.py"))
    value = "<b>\"&'\x1b[2J\x00\u202e"
    for ext in ("html", "xml", "svg"):
        assert env.get_template(f"t.{ext}").render(v=value, n=None) == "&lt;b&gt;&#34;&amp;&#39;[2J|"
    assert env.get_template("t.txt").render(v=value, n=None) == "<b>\"&'[2J|"


def test_message_page_escapes_hostile_text_and_form_values():
    hostile = 'Boom\x1b]0;pwned\x07 <script>alert(1)</script> "><img src=x onerror=alert(2)>'
    html = render_message(hostile, f"{hostile}\nsecond line", Links(), ButtonForm("/status/confirm", hostile, hostile))

    class Tags(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags: list[str] = []
            self.values: list[str | None] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.tags.append(tag)
            self.values += [v for k, v in attrs if k == "value"]

    parser = Tags()
    parser.feed(html)
    assert "script" not in parser.tags and "img" not in parser.tags
    assert parser.values == ['Boom]0;pwned <script>alert(1)</script> "><img src=x onerror=alert(2)>']
    assert "\x1b" not in html and "\x07" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &#34;&gt;&lt;img src=x onerror=alert(2)&gt;<br>second line" in html
