-- Least privilege in the database: two group roles (NOLOGIN; roles are cluster-wide, so they
-- are created only if absent). Login users join them (docs/deploy.md, "Database roles"):
--   eis_migrator  owns schema exp and everything in it; migrations and partition maintenance
--                 run with its rights.
--   eis_app       what the ingest function and the archiver need, and nothing more:
--                 SELECT/INSERT on the tables of exp (exp.events, exp.event_ids, and tables
--                 added later), UPDATE of exp.events.handed_off_at only (the hand-off),
--                 UPDATE/DELETE of exp.archive_hours (the archiver's bookkeeping), and
--                 EXECUTE on the two partition functions, which run as their owner
--                 (SECURITY DEFINER): the app can create and drop day partitions only
--                 through them, never DROP, TRUNCATE, ALTER or DELETE itself.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'eis_migrator') THEN
        BEGIN
            CREATE ROLE eis_migrator NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL; -- created meanwhile by a migration of another database in this cluster
        END;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'eis_app') THEN
        BEGIN
            CREATE ROLE eis_app NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
END $$;

-- The user running the migrations (the RDS master user: CREATEROLE, not superuser) must be a
-- member of eis_migrator to hand objects to it.
-- (Superusers already are; concurrent migrations of other databases may race on the grant.)
DO $$
BEGIN
    IF NOT pg_has_role(current_user, 'eis_migrator', 'MEMBER') THEN
        BEGIN
            EXECUTE format('GRANT eis_migrator TO %I', current_user);
        EXCEPTION WHEN unique_violation THEN
            NULL;
        END;
    END IF;
END $$;

-- Ownership: the schema, every relation in it (partitions included: ALTER TABLE on the parent
-- does not recurse to them) and every function.
ALTER SCHEMA exp OWNER TO eis_migrator;
DO $$
DECLARE
    obj record;
BEGIN
    FOR obj IN
        SELECT c.oid::regclass AS rel FROM pg_class c
        WHERE c.relnamespace = 'exp'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
    LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO eis_migrator', obj.rel);
    END LOOP;
    FOR obj IN
        SELECT p.oid::regprocedure AS fn FROM pg_proc p WHERE p.pronamespace = 'exp'::regnamespace
    LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO eis_migrator', obj.fn);
    END LOOP;
END $$;

-- The partition functions create, attach and drop tables: they run as eis_migrator, with a
-- fixed search_path so that a caller's objects cannot stand in for the catalog's.
ALTER FUNCTION exp.ensure_day_partition(date) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION exp.drop_expired_partitions(integer, timestamptz) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION exp.ensure_day_partition(date) FROM PUBLIC;
REVOKE ALL ON FUNCTION exp.drop_expired_partitions(integer, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION exp.ensure_day_partition(date) TO eis_app;
GRANT EXECUTE ON FUNCTION exp.drop_expired_partitions(integer, timestamptz) TO eis_app;

-- The application's rights.
REVOKE ALL ON SCHEMA exp FROM PUBLIC;
GRANT USAGE ON SCHEMA exp TO eis_app;
GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA exp TO eis_app;
GRANT UPDATE (handed_off_at) ON exp.events TO eis_app;
-- exp.archive_hours (V3) is the archiver's bookkeeping: it records hours (an upsert) and
-- clears them once compacted.
GRANT UPDATE, DELETE ON exp.archive_hours TO eis_app;

-- Tables created later, by eis_migrator (partitions made by the functions above, migrations
-- that SET ROLE eis_migrator) or by the user running the migrations, get the same rights.
ALTER DEFAULT PRIVILEGES FOR ROLE eis_migrator IN SCHEMA exp GRANT SELECT, INSERT ON TABLES TO eis_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA exp GRANT SELECT, INSERT ON TABLES TO eis_app;
