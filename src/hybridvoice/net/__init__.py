"""hybridvoice.net"""
