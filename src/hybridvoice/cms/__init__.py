"""hybridvoice.cms"""
