"""hybridvoice.edge"""
