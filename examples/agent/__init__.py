"""The agent example: a workflow streams a fake model's tokens to a browser; see README.md."""
