"""hybridvoice.pki"""
