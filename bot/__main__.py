"""`python -m bot` runs the `ritmo` command."""

from bot.cli import main

main()
