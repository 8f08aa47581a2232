"""Learned models that the policies and the simulator share.

They sit below both: a policy plans with the same runtime model the simulator samples run times
from, so neither may own it. A model imports nothing of sparkscaler but ``core`` and ``units``:
it learns from plain records and is read and written as plain files.
"""
