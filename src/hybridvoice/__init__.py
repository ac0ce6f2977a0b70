"""hybridvoice: an open hybrid-voice cloud connector."""

__version__ = "0.1.0"
