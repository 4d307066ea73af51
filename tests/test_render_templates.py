"""Templates: a templates_dir file replaces the packaged one (e-mail or web page); a broken one names its line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from digest.errors import TemplateError
from tests.render_sample import example_config, render_sample
from tests.web_site import running_site


def override(tmp_path: Path, name: str, text: str):
    path = tmp_path / "my-templates" / "email" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return example_config(templates_dir=tmp_path / "my-templates"), path


def test_a_file_in_templates_dir_replaces_the_packaged_one_of_the_same_name(tmp_path):
    config, _ = override(
        tmp_path,
        "partials/footer.mjml.j2",
        "<mj-section><mj-column><mj-text>Our own footer, {{ newsletter.postal_address }} "
        '<a href="{{ ph.unsubscribe_url }}">Leave</a></mj-text></mj-column></mj-section>\n',
    )
    out = render_sample(config)
    assert "Our own footer" in out.html and "Manage preferences" not in out.html
    # The files not overridden still come from the package.
    assert "Keep reading" in out.html and "View in browser" in out.html


def test_a_syntax_error_in_an_override_names_its_file_and_line(tmp_path):
    config, path = override(tmp_path, "partials/header.mjml.j2", "<mj-section>\n{% if newsletter.name %}\n")
    with pytest.raises(TemplateError) as caught:
        render_sample(config)
    assert f"{path}:3" in str(caught.value) or f"{path}:2" in str(caught.value)


def test_a_misspelt_variable_names_the_template_and_line(tmp_path):
    config, path = override(
        tmp_path,
        "partials/header.mjml.j2",
        "<mj-section><mj-column>\n<mj-text>{{ newsletter.naem }}</mj-text>\n</mj-column></mj-section>\n",
    )
    with pytest.raises(TemplateError) as caught:
        render_sample(config)
    assert f"{path}:2" in str(caught.value)
    assert "naem" in str(caught.value)


def test_an_override_that_does_not_compile_as_mjml_names_the_template(tmp_path):
    config, path = override(tmp_path, "digest.mjml.j2", "<mjml><mj-body><mj-section></mjml>\n")
    with pytest.raises(TemplateError) as caught:
        render_sample(config)
    assert str(path) in str(caught.value) and "MJML did not compile" in str(caught.value)


def test_a_missing_templates_dir_is_an_error_naming_the_setting(tmp_path):
    config = example_config(templates_dir=tmp_path / "nowhere")
    with pytest.raises(TemplateError, match="templates_dir .*nowhere.* is not a folder"):
        render_sample(config)


def test_a_web_page_in_templates_dir_replaces_the_packaged_one_relative_to_the_newsletter_file(settings, tmp_path):
    page = tmp_path / "my-templates" / "web" / "subscribe.html"
    page.parent.mkdir(parents=True)
    page.write_text("<p>Our own sign-up page for {{ newsletter.name }}</p>\n")
    # A relative templates_dir is taken from the folder of the newsletter file, not the working directory.
    newsletter = example_config(templates_dir=Path("my-templates"), path=tmp_path / "digest.toml")
    with running_site(settings, newsletter=newsletter) as site:
        mine = site.http.get("/subscribe")
        assert mine.status_code == 200 and "Our own sign-up page for The Meridian Review" in mine.text
        # Pages not overridden still come from the package.
        home = site.http.get("/")
        assert home.status_code == 200 and "One e-mail a week" in home.text


def test_the_environment_is_kept_per_template_folder_and_still_sees_an_edited_template(tmp_path):
    from digest.email.render import environment

    config, path = override(tmp_path, "partials/footer.mjml.j2", FOOTER.format(words="First footer"))
    assert environment(config) is environment(config.model_copy())  # compiled templates are kept
    assert environment(config) is not environment(example_config())  # another folder, another environment
    assert "First footer" in render_sample(config).html
    path.write_text(FOOTER.format(words="Edited footer"))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))  # however coarse the clock
    html = render_sample(config).html
    assert "Edited footer" in html and "First footer" not in html


FOOTER = (
    "<mj-section><mj-column><mj-text>{words}, {{{{ newsletter.postal_address }}}} "
    '<a href="{{{{ ph.unsubscribe_url }}}}">Leave</a></mj-text></mj-column></mj-section>\n'
)
