"""The web app served by `digest serve`: sign-up, confirmation, unsubscribe, preferences, the subscriber
API, web hooks, the public archive and the editor's preview.

Routers parse the request, call a use case (digest.jobs) and answer; none queries the store or imports
another router. What they share is in deps (the core, forms, the API's bearer), pages (templates),
csrf, access (who may see the editor's pages), busy, limits, ratelimit and security.
"""
