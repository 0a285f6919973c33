-- The directory of airports, kept by each airport's Durable Object: `live` while a controller
-- or pilot is connected, `awake` while state is kept, `dormant` with neither, observers or not
-- (then `seq` is where it stopped). GET /state answers a dormant or unknown
-- airport from here without waking its object; GET /state?airport=all reads the live ones.
CREATE TABLE airports (
    icao TEXT PRIMARY KEY CHECK (length(icao) = 4),
    status TEXT NOT NULL CHECK (status IN ('live', 'awake', 'dormant')),
    seq INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
);

CREATE INDEX airports_by_status ON airports (status);
