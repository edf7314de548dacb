"""Copies of finished videos into the operator's storage: the values and the pure rules.

``relay.copies.values`` holds a copy's row (``OutputCopy``, the outbox work a copier claims)
and the summary a task carries (``TaskOutput``); ``relay.copies.rules`` decides how a task's
success waits for its copies, what each try leaves, and which event announces what. The
copier that does the I/O is ``relay.copier``; the stores it writes to are ``relay.outputs``.
"""
