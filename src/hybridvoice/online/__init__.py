"""hybridvoice.online"""
