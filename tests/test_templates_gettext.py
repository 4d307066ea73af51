"""The templates' `_`, `gettext` and `ngettext` say what Jinja2's own new-style ones say."""

from __future__ import annotations

import jinja2
import pytest
from markupsafe import Markup

from digest.email.templates import is_html, template_environment
from digest.locale import language

TEMPLATE = (
    '{{ _("By %(author)s", author=name) }}|{{ _("Keep reading") }}|{{ gettext("Top story") }}|'
    '{{ ngettext("%(num)s min read", "%(num)s min read", n) }}|{{ _("100%%") }}|'
    '{{ _("See %(link)s", link=link) }}|{% trans %}Hello {{ name }}{% endtrans %}|'
    "{% trans count=n %}{{ count }} article{% pluralize %}{{ count }} articles{% endtrans %}"
)


def jinja_s_own(folder, language_tag: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        autoescape=is_html,  # noqa: S701 (a function: on for HTML templates, as in the product)
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
    )
    env.policies["ext.i18n.trimmed"] = True
    env.install_gettext_translations(language(language_tag).translations, newstyle=True)  # type: ignore[attr-defined]
    return env


@pytest.mark.parametrize("language_tag", ["en", "fr", "ar"])
@pytest.mark.parametrize("name", ["page.html.j2", "part.txt.j2"])
def test_translated_words_escape_and_format_as_jinja2_s_own(tmp_path, language_tag, name):
    (tmp_path / name).write_text(TEMPLATE)
    ours = template_environment([tmp_path], language_tag).get_template(name)
    theirs = jinja_s_own(tmp_path, language_tag).get_template(name)
    link = Markup('<a href="#">here</a>')  # markup made in Python stays markup, as in Jinja2's
    for values in ({"name": "<Ana & Bo>", "n": 1, "link": link}, {"name": "Zoé", "n": 7, "link": link}):
        assert ours.render(values) == theirs.render(values)
    made = ours.render({"name": "<Ana & Bo>", "n": 1, "link": link})
    assert ("&lt;Ana &amp; Bo&gt;" in made) is name.endswith(".html.j2")
    assert "100%|" in made
