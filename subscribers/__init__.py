"""The audience: subscribers, their consent and history, signed links, suppressions and imports."""
