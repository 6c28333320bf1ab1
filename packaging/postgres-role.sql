-- A least-privilege PostgreSQL role for callbackd: it logs in, owns its one database and
-- what its migrations create there, and nothing else — no superuser, no CREATEDB, no
-- CREATEROLE, no replication. Run it once as a superuser on the database server:
--
--   psql -U postgres -v role=callbackd -v db=callbackd -f /usr/share/callbackd/postgres-role.sql
--
-- (both variables default to `callbackd`), then give the role a password
-- (`\password callbackd`) or map it in pg_hba.conf, and set database.url to
-- postgres://callbackd@<host>/callbackd. callbackd then runs its own migrations as that
-- role; keep database.create_if_missing off (the role cannot create databases anyway).
\set ON_ERROR_STOP on
\if :{?role}
\else
  \set role callbackd
\endif
\if :{?db}
\else
  \set db callbackd
\endif

SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS',
              :'role')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') \gexec

SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec

-- Nobody else connects to it or creates objects in it.
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'db') \gexec
SELECT format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', :'db', :'role') \gexec

\connect :"db"
-- The migrations create tables, functions and triggers in `public`: the role owns it.
SELECT format('ALTER SCHEMA public OWNER TO %I', :'role') \gexec
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
