"""Seedance relay: tracks video-generation tasks across reseller APIs and delivers signed
webhooks (Standard Webhooks) with retries."""

__version__ = "0.1.0"
