-- Where a key came from: `own` (made here, by scripts/keys.mjs create) or `import` (the running
-- service's key, stored hashed by scripts/keys.mjs import). An import revokes only the keys an
-- earlier import stored, when the person's key has changed since.
ALTER TABLE api_keys ADD COLUMN origin TEXT NOT NULL DEFAULT 'own' CHECK (origin IN ('own', 'import'));
