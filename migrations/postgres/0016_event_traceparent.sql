-- The W3C traceparent of each event (CONTRACT §7.6): the one given on event.publish, or a
-- fresh one; every attempt of the event's payloads is sent in that trace. NULL for events
-- stored before this migration (their attempts start a trace of their own).
ALTER TABLE events ADD COLUMN traceparent TEXT;
