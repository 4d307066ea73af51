"""Use cases: the only place the CLI, the web app and the scheduler go for work.

weekly (gather, build, send, the weekly run), draft (an editor's changes and the preview's page),
articles (the week's list, overrides), issues (finding stored issues), audience (the subscriber pages'
and API's work), figures (an issue's figures from the provider's events), excerpt (`digest excerpt`).
Each takes the core (`digest.core.Digest`) and hands the layers below only the pieces they need.
"""
