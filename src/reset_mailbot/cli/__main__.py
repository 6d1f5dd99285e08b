"""`python -m reset_mailbot.cli`: the same as the `reset-mailbot` script."""

from reset_mailbot.cli import main

main()
