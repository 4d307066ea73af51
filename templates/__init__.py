"""The e-mail and web templates, installed as the package data folder `digest.templates`.

A module file only so that editable installs map this folder too (pyproject.toml, [tool.setuptools]).
"""
