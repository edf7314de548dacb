"""Provider dialects, pure (no I/O): each builds a provider's requests and normalizes its
answers (``ark``, ``unified``, ``seedance2ink``), behind the protocol in ``base`` and found by
name in ``registry``; ``video_input`` and ``native_bodies`` translate the provider-neutral
input; ``common`` holds the parsing the dialects share."""
