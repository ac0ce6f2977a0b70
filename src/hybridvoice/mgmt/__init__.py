"""hybridvoice.mgmt"""
