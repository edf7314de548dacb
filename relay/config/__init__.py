"""Configuration: YAML text with ``${ENV}`` → frozen, validated settings (``settings``), the
plain sections (``sections``), text handling (``text``) and the providers' presets
(``presets``)."""
