"""``python -m hybridvoice``: the same as the ``hybridvoice`` command."""

from hybridvoice.cli import main

main()
