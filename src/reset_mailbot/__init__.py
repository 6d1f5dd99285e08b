"""reset-mailbot: turns e-mail from municipal staff into safe 2FA resets on the Forus platform."""

__version__ = "0.1.0"
