-- How a destination's deliveries are shaped (relay.models.Destination.body_format):
-- 'standard' (the event envelope) or a front door's own ('ark': the Ark task object, as Ark
-- sends its callbacks). Every destination so far got the envelope.
ALTER TABLE destinations ADD COLUMN body_format TEXT NOT NULL DEFAULT 'standard';
