"""An issue's content: its week and window (weeks), the articles it holds (compose), their stored summaries."""
