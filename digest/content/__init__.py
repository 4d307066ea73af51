"""An issue's content: its week and window (periods), the articles it holds (compose), their stored summaries."""
