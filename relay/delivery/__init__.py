"""Delivering events: how an attempt ends and when to retry (``outcomes``, pure), fair shares
of the slots and rate gates (``fairness``, pure), the engine that claims, signs and sends
(``engine``, with the signed request from ``requests``), its batched attempt records
(``recorder``) and fresh video URLs for late sends (``fresh_urls``)."""
