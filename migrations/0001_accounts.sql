-- Accounts and their API keys. Keys are stored only as lowercase hex SHA-256.
CREATE TABLE accounts (
    cid TEXT PRIMARY KEY CHECK (cid GLOB '[0-9]*' AND cid NOT GLOB '*[^0-9]*'),
    role TEXT NOT NULL CHECK (role IN ('controller', 'pilot', 'observer')),
    banned INTEGER NOT NULL DEFAULT 0 CHECK (banned IN (0, 1)),
    -- A ban with an end (epoch ms); NULL with banned = 1 is a ban without end.
    banned_until INTEGER
);

CREATE TABLE api_keys (
    key_hash TEXT PRIMARY KEY CHECK (length(key_hash) = 64),
    cid TEXT NOT NULL REFERENCES accounts (cid) ON DELETE CASCADE,
    created_at INTEGER NOT NULL DEFAULT (unixepoch() * 1000),
    -- Set to revoke the key (epoch ms); revoked keys are rejected as unknown.
    revoked_at INTEGER
);

CREATE INDEX api_keys_by_cid ON api_keys (cid);
