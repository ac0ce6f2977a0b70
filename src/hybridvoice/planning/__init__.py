"""hybridvoice.planning"""
