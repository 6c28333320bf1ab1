-- Daemons keep security users, skills and agents in memory (every request looks them up).
-- Every change to one of these tables notifies `callbackd_directory` with the table's name,
-- and each daemon drops what it holds of that table. One notification per statement (and
-- PostgreSQL folds identical ones within a transaction), so an import of thousands of rows
-- sends one.

CREATE FUNCTION callbackd_notify_directory() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('callbackd_directory', TG_TABLE_NAME);
    RETURN NULL;
END
$$;

CREATE TRIGGER security_users_notify_directory
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON security_users
    FOR EACH STATEMENT EXECUTE FUNCTION callbackd_notify_directory();

CREATE TRIGGER skills_notify_directory
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON skills
    FOR EACH STATEMENT EXECUTE FUNCTION callbackd_notify_directory();

CREATE TRIGGER agents_notify_directory
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON agents
    FOR EACH STATEMENT EXECUTE FUNCTION callbackd_notify_directory();
