-- Demo accounts for local development and tests ONLY. Never apply to a production database.
-- Keys (stored hashed): dev-controller-1, dev-controller-2, dev-pilot-1, dev-pilot-2, dev-observer-1, dev-banned-1.
INSERT OR REPLACE INTO accounts (cid, role, banned) VALUES ('1000001', 'controller', 0);
INSERT OR REPLACE INTO accounts (cid, role, banned) VALUES ('1000002', 'controller', 0);
INSERT OR REPLACE INTO accounts (cid, role, banned) VALUES ('1000011', 'pilot', 0);
INSERT OR REPLACE INTO accounts (cid, role, banned) VALUES ('1000012', 'pilot', 0);
INSERT OR REPLACE INTO accounts (cid, role, banned) VALUES ('1000021', 'observer', 0);
INSERT OR REPLACE INTO accounts (cid, role, banned) VALUES ('1000031', 'controller', 1);
INSERT OR REPLACE INTO api_keys (key_hash, cid) VALUES ('c0be65418d0fd69ef13ce704fb4b29814de9f85c66e0fd0537a545aa28b8543a', '1000001'); -- dev-controller-1
INSERT OR REPLACE INTO api_keys (key_hash, cid) VALUES ('c4eac8c6d845b666b3c313773675a90552584b903755451af5abd43b9c0f21c9', '1000002'); -- dev-controller-2
INSERT OR REPLACE INTO api_keys (key_hash, cid) VALUES ('baa9b2f6ad1c846bf4e34fc8deea46ce6dfdf26b41007d6a9feba097cab5d200', '1000011'); -- dev-pilot-1
INSERT OR REPLACE INTO api_keys (key_hash, cid) VALUES ('09616059b96e774b803c4c827ff9663fa213352d5fdba954bc493f47c6d21712', '1000012'); -- dev-pilot-2
INSERT OR REPLACE INTO api_keys (key_hash, cid) VALUES ('48800a25e3375664d07481e642ca974aecf9d543c52f655520302bd85954fc7b', '1000021'); -- dev-observer-1
INSERT OR REPLACE INTO api_keys (key_hash, cid) VALUES ('67c61cd100fa4d36e4d22ab4955426b315f2a1ba7d7d0f4e912fb89805060f62', '1000031'); -- dev-banned-1
