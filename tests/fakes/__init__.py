"""Test peers that run for real on loopback: the fake SendGrid Mail Send API."""
