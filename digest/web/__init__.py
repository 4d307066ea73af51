"""The web app served by `digest serve`: sign-up, confirmation, unsubscribe, preferences, web hooks."""
