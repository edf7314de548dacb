"""Delivering events: how an attempt ends and when to retry (``outcomes``, pure), the engine
that claims, signs and sends (``engine``), its batched attempt records (``recorder``) and fresh
video URLs for late sends (``fresh_urls``)."""
