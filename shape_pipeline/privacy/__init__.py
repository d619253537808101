"""Formal privacy: OpenDP mechanisms with bounded user contributions (dp.py) and the epsilon
ledger kept with the audit log (budget.py)."""
