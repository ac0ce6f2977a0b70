"""hybridvoice.media"""
