"""hybridvoice.mediation"""
