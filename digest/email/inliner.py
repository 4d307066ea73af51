"""premailer's CSS inlining, with the work that is the same at every render of an issue done once per process.

An issue's CSS is its templates' and so the same at every render; only the elements it lands on change.
`Inliner` is premailer's `Premailer` with its `transform` taken in the order premailer takes it, for the
options `digest.email.render.inline_css` passes (no network, no link rewrites, <style> tags kept, no
`!important` stripped, no floating-image alignment). premailer still parses the rules, merges the styles
and derives the HTML attributes (bgcolor, width, align...); what changes:

- each distinct <style> block is parsed once (cssutils parsing and re-serializing the same CSS was half
  of premailer's time);
- a selector made of tag names and classes joined by spaces (`.title a`, `td.thumb`: all the templates
  use) is matched from one index of the page's elements by class and tag, instead of an XPath query over
  the whole page per selector; any other selector goes through premailer's XPath as before;
- an element's final style and attributes are kept by what decides them (its own style attribute and the
  rules that matched it): a page has a few hundred styled elements and a few dozen distinct cases.

The output is premailer's, byte for byte (tests/test_render_inliner.py compares the two).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from typing import Any

from lxml import etree
from premailer import Premailer
from premailer.merge_style import csstext_to_pairs, merge_styles
from premailer.premailer import FILTER_PSEUDOSELECTORS, _create_cssselector, get_or_create_head

# Parsed <style> blocks, by (CSS text, position in the page).
_PARSED_RULES: dict[tuple[str, int], tuple[list[Any], list[Any]]] = {}
_PARSED_RULES_MAX = 64
# Final style and HTML attributes, by (the element's own style, the matched rules' declarations and
# pseudo-classes, and the two options that change a merge): bounded, since a newsletter's own CSS and
# content decide how many there are.
_MERGED: dict[tuple[str, tuple[tuple[str, str], ...], bool, bool], tuple[str, tuple[tuple[str, str], ...]]] = {}
_MERGED_MAX = 4096

# CSS identifiers as cssselect reads them unescaped; anything else (ids, attributes, combinators other
# than the descendant one, pseudo-classes, escapes) is left to premailer's XPath.
_IDENT = r"-?[A-Za-z_][A-Za-z0-9_-]*"
_COMPOUND = re.compile(rf"({_IDENT})?((?:\.{_IDENT})*)")
# XPath's normalize-space() (how cssselect matches a class) splits at these four only.
_XML_SPACE = str.maketrans("\t\n\r", "   ")

Compound = tuple[str, frozenset[str]]

# The names in each distinct class attribute: a page repeats a few dozen of them over a few hundred elements.
_CLASS_NAMES: dict[str, frozenset[str]] = {}
_CLASS_NAMES_MAX = 4096


def _class_names(value: str) -> frozenset[str]:
    names = _CLASS_NAMES.get(value)
    if names is None:
        names = frozenset(name for name in value.translate(_XML_SPACE).split(" ") if name)
        if len(_CLASS_NAMES) >= _CLASS_NAMES_MAX:
            _CLASS_NAMES.clear()
        _CLASS_NAMES[value] = names
    return names


def _compounds(selector: str) -> list[Compound] | None:
    """`td.thumb .title a` as [(tag, classes), ...], or None when it is not tags and classes only."""
    compounds = []
    for part in selector.split():
        match = _COMPOUND.fullmatch(part)
        if match is None:
            return None
        compounds.append((match[1] or "", frozenset(c for c in match[2].split(".") if c)))
    return compounds or None


class _Index:
    """The page's elements by class (and, when a selector asks, by tag), in document order."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.by_class: dict[str, list[Any]] = {}
        self.matching: dict[Compound, list[Any]] = {}
        for element in page.xpath("descendant-or-self::*[@class]"):
            for name in _class_names(element.get("class")):
                self.by_class.setdefault(name, []).append(element)

    def _matching(self, compound: Compound) -> list[Any]:
        found = self.matching.get(compound)
        if found is None:
            tag, classes = compound
            if classes:
                found = [
                    element
                    for element in self.by_class.get(min(classes), [])
                    if (not tag or element.tag == tag)
                    and (len(classes) == 1 or classes <= _class_names(element.get("class")))
                ]
            else:
                found = list(self.page.iter(tag))  # iter() gives comments too, iter(tag) elements only
            self.matching[compound] = found
        return found

    def select(self, compounds: Sequence[Compound]) -> list[Any]:
        """The elements matching `compounds`, in document order, as cssselect's XPath finds them."""
        candidates = self._matching(compounds[-1])
        if len(compounds) == 1:
            return candidates
        ancestors = [set(self._matching(compound)) for compound in compounds[:-1]]
        found = []
        for element in candidates:
            # Descendant combinators only: the nearest ancestor matching each compound, right to left.
            wanted = len(ancestors) - 1
            for node in element.iterancestors():
                if node in ancestors[wanted]:
                    wanted -= 1
                    if wanted < 0:
                        found.append(element)
                        break
        return found


class Inliner(Premailer):  # type: ignore[misc]  # premailer has no type hints
    """premailer with each distinct style block parsed once, simple selectors matched from an index and
    merged styles kept (see the module's note). Only the options inline_css passes are supported."""

    def _parse_style_rules(self, css_body: str, ruleset_index: int) -> tuple[list[Any], list[Any]]:
        key = (css_body, ruleset_index)
        parsed = _PARSED_RULES.get(key)
        if parsed is None:
            parsed = super()._parse_style_rules(css_body, ruleset_index)
            if len(_PARSED_RULES) >= _PARSED_RULES_MAX:
                _PARSED_RULES.clear()
            _PARSED_RULES[key] = parsed
        rules, leftover = parsed
        return list(rules), list(leftover)  # premailer extends lists of its own; the cached ones stay as they are

    def _supported(self) -> bool:
        return bool(
            self.method == "html"
            and self.keep_style_tags
            and not self.strip_important
            and not self.allow_network
            and not self.external_styles
            and not self.css_text
            and not self.base_url
            and not self.remove_classes
            and not self.capitalize_float_margin
            and not self.align_floating_images
            and not self.preserve_handlebar_syntax
            and not self.disable_leftover_css
            and not self.disable_basic_attributes
        )

    def transform(self, html: Any = None, pretty_print: bool = True, **kwargs: Any) -> Any:
        if html is not None or not isinstance(self.html, str) or kwargs or not self._supported():
            return super().transform(html, pretty_print=pretty_print, **kwargs)
        stripped = self.html.strip()
        tree = etree.fromstring(stripped, etree.HTMLParser()).getroottree()
        page = tree.getroot()
        # lxml adds a doctype when there is none; premailer keeps it only when the input had it as lxml writes it.
        root = tree if stripped.startswith(tree.docinfo.doctype) else page
        get_or_create_head(tree)

        rules: list[Any] = []
        for index, element in enumerate(self._inlined_style_elements(page)):
            these_rules, _ = self._parse_style_rules(element.text, index)
            rules.extend(these_rules)
        rules.sort(key=lambda rule: rule[0])

        elements = self._matches(page, rules)
        scratch = etree.Element("scratch")
        options = (bool(self.disable_validation), bool(self.remove_unset_properties))
        for element, matched in elements.items():
            key = (element.get("style", ""), tuple(matched), *options)
            merged = _MERGED.get(key)
            if merged is None:
                final = merge_styles(
                    key[0],
                    [csstext_to_pairs(style, validate=not self.disable_validation) for style, _ in matched],
                    [pseudo for _, pseudo in matched],
                    remove_unset_properties=self.remove_unset_properties,
                )
                scratch.attrib.clear()
                self._style_to_basic_html_attributes(scratch, final, force=True)
                merged = (final, tuple(scratch.attrib.items()))
                if len(_MERGED) >= _MERGED_MAX:
                    _MERGED.clear()
                _MERGED[key] = merged
            final, attributes = merged
            if final:
                element.set("style", final)
            for name, value in attributes:
                element.set(name, value)

        out = etree.tostring(root, method="html", pretty_print=pretty_print, encoding="utf-8")
        return out.decode("utf-8")

    def _inlined_style_elements(self, page: Any) -> list[Any]:
        """The <style> elements whose rules are inlined, as premailer picks them (its marker removed)."""
        picked = []
        for element in page.iter("style"):
            media = element.attrib.get("media")
            if media and media not in ("all", "screen"):
                continue
            data_attribute = element.attrib.get(self.attribute_name)
            if data_attribute:
                if data_attribute == "ignore":
                    del element.attrib[self.attribute_name]
                    continue
                warnings.warn(f"Unrecognized {self.attribute_name} attribute ({data_attribute!r})", stacklevel=3)
            picked.append(element)
        return picked

    def _matches(self, page: Any, rules: list[Any]) -> dict[Any, list[tuple[str, str]]]:
        """Each element any rule matches, in the order premailer meets them, with the (declarations,
        pseudo-class) of its rules, lowest specificity first."""
        index: _Index | None = None
        elements: dict[Any, list[tuple[str, str]]] = {}
        for _, selector, style in rules:
            pseudo = ""
            if ":" in selector:
                before, after = selector.split(":", 1)
                pseudo = ":" + after
                if pseudo in FILTER_PSEUDOSELECTORS or pseudo.startswith(":nth-child"):
                    pseudo = ""
                else:
                    selector = before
            compounds = _compounds(selector)
            if compounds is None:
                items = _create_cssselector(selector)(page)
            else:
                if index is None:
                    index = _Index(page)
                items = index.select(compounds)
            for item in items:
                elements.setdefault(item, []).append((style, pseudo))
        return elements
