"""Tasks at the providers: registering them (``registration``), talking to providers with
their health and back-off (``providers``), and the tracker that polls and applies answers
(``tracker``)."""
