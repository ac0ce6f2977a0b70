"""``python -m hybridvoice.mgmt``: the same as the ``hybridvoice`` command."""

from hybridvoice.mgmt.cli import main

main()
