//! PostgreSQL clusters of their own: one with TLS, and a primary with a synchronous
//! streaming replica.

use std::path::{Path, PathBuf};

use super::{append, as_postgres, free_port, run};

/// A PostgreSQL cluster of its own, in a temporary directory, with `ssl = on`.
pub struct TlsPostgres {
    pub port: u16,
    dir: PathBuf,
}

impl TlsPostgres {
    /// `cert` and `key` are PEM files of the server's certificate (chain) and key.
    pub fn start(cert: &Path, key: &Path) -> Self {
        let dir = postgres_dir("callbackd-pg");
        let data = dir.join("data");
        initdb(&data);
        for (from, to) in [(cert, "server.crt"), (key, "server.key")] {
            std::fs::copy(from, data.join(to)).expect("copy cert");
            run(
                "chown",
                &["postgres:postgres", data.join(to).to_str().expect("utf-8")],
            );
            run("chmod", &["600", data.join(to).to_str().expect("utf-8")]);
        }
        let port = free_port();
        let conf = format!(
            "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n\
             fsync = off\nmax_connections = 50\n",
            dir.display()
        );
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .expect("postgresql.conf");
        std::io::Write::write_all(&mut file, conf.as_bytes()).expect("conf written");
        let log = dir.join("log");
        let out = as_postgres(
            "pg_ctl",
            &[
                "-D",
                data.to_str().expect("utf-8"),
                "-l",
                log.to_str().expect("utf-8"),
                "-w",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {} {}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Self { port, dir }
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        as_postgres(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap_or_default(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A PostgreSQL primary with a synchronous streaming replica, each a cluster of its own.
pub struct PgPair {
    pub primary_port: u16,
    pub replica_port: u16,
    dir: PathBuf,
}

impl PgPair {
    pub fn start() -> Self {
        let dir = postgres_dir("callbackd-pgpair");
        let (primary_port, replica_port) = (free_port(), free_port());
        let primary = dir.join("primary");
        initdb(&primary);
        append(
            &primary.join("postgresql.conf"),
            &format!(
                "port = {primary_port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
                 synchronous_standby_names = '*'\nmax_connections = 100\n",
                dir.display()
            ),
        );
        let pair = Self {
            primary_port,
            replica_port,
            dir,
        };
        pair.pg_ctl("primary", "start");
        let replica = pair.dir.join("replica");
        let out = as_postgres(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &primary_port.to_string(),
                "-U",
                "postgres",
                "-D",
                replica.to_str().expect("utf-8"),
                "-X",
                "stream",
                "-R",
                "-C",
                "-S",
                "replica",
            ],
        );
        assert!(
            out.status.success(),
            "pg_basebackup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // A replica that waits for a synchronous standby of its own would hang every write
        // once promoted.
        append(
            &replica.join("postgresql.conf"),
            &format!("port = {replica_port}\nsynchronous_standby_names = ''\n"),
        );
        pair.pg_ctl("replica", "start");
        pair
    }

    fn pg_ctl(&self, which: &str, action: &str) -> bool {
        let data = self.dir.join(which);
        let log = self.dir.join(format!("{which}.log"));
        as_postgres(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap_or_default(),
                "-l",
                log.to_str().unwrap_or_default(),
                "-m",
                "immediate",
                "-w",
                action,
            ],
        )
        .status
        .success()
    }

    /// `kill -9` of the primary's postmaster.
    pub fn kill_primary(&self) {
        let pid = std::fs::read_to_string(self.dir.join("primary/postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().map(str::to_owned))
            .expect("primary pid");
        run("kill", &["-9", pid.trim()]);
    }

    /// Promotes the replica; returns once it accepts writes.
    pub fn promote_replica(&self) {
        assert!(self.pg_ctl("replica", "promote"), "promoted");
    }
}

impl Drop for PgPair {
    fn drop(&mut self) {
        self.pg_ctl("primary", "stop");
        self.pg_ctl("replica", "stop");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A new directory `<prefix>-<uuid>` under the temporary directory, owned by `postgres`.
fn postgres_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).expect("pg dir");
    run(
        "chown",
        &["postgres:postgres", dir.to_str().expect("utf-8")],
    );
    dir
}

/// A new cluster in `data`, trusting local connections, its superuser `postgres`.
fn initdb(data: &Path) {
    let out = as_postgres(
        "initdb",
        &[
            "-A",
            "trust",
            "-U",
            "postgres",
            "-D",
            data.to_str().expect("utf-8"),
        ],
    );
    assert!(
        out.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
