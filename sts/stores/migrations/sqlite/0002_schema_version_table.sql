-- The version now lives in schema_version. Releases before it read meta.schema_version and accepted only '1':
-- without the row they refuse this database ("unexpected schema version") instead of running on a newer schema.
DELETE FROM meta WHERE key = 'schema_version';
