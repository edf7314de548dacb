-- When the video URL in a task.succeeded event stops working (NULL: never, or not a success
-- event). A delivery sent after it first asks the provider for a fresh URL.
ALTER TABLE events ADD COLUMN url_expires_at double precision;
