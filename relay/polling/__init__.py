"""When to poll: the configured schedule (``schedule``), task durations learned from finished
tasks (``durations``) and the schedule those durations refine (``learned``). All pure."""
