"""`python -m web.cli ...`: the same as the `aioshop` command."""

from web.cli.main import main

main()
