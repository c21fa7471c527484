"""The checkout example: a shop (ASGI) and a fake payment provider; see README.md."""
