"""ttrd: how fast a team answers customer e-mail, measured on-premise from the mail journal."""

__version__ = "0.1.0"
