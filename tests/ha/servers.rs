//! Servers a test starts beside the machine's own, on ports of their own, and stops when
//! dropped (even when the test fails): a PostgreSQL cluster with TLS, a RabbitMQ node with a
//! TLS listener. See `../shared/notes/ha-on-one-machine.md` for what was found to work here.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on now (taken and released at once).
fn free_port() -> u16 {
    testkit::free_port().expect("a free port")
}

fn run(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn pg_bin(tool: &str) -> String {
    let version = std::fs::read_dir("/etc/postgresql")
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .expect("a PostgreSQL version under /etc/postgresql");
    format!("/usr/lib/postgresql/{version}/bin/{tool}")
}

/// Runs a PostgreSQL tool as the `postgres` user (they refuse root).
fn as_postgres(tool: &str, args: &[&str]) -> std::process::Output {
    let bin = pg_bin(tool);
    let mut all = vec!["-u", "postgres", "--", bin.as_str()];
    all.extend_from_slice(args);
    run("runuser", &all)
}

/// A PostgreSQL cluster of its own, in a temporary directory, with `ssl = on`.
pub struct TlsPostgres {
    pub port: u16,
    dir: PathBuf,
}

impl TlsPostgres {
    /// `cert` and `key` are PEM files of the server's certificate (chain) and key.
    pub fn start(cert: &Path, key: &Path) -> Self {
        let dir =
            std::env::temp_dir().join(format!("callbackd-pg-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).expect("pg dir");
        run(
            "chown",
            &["postgres:postgres", dir.to_str().expect("utf-8")],
        );
        let data = dir.join("data");
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

/// TLS material for a node's TLS listener.
pub struct NodeTls<'a> {
    pub ca: &'a Path,
    pub cert: &'a Path,
    pub key: &'a Path,
}

/// A RabbitMQ node of its own (never clustered with the machine's): a plain listener, and a
/// TLS one when asked. It can be stopped and started again with its data; it is stopped
/// for good when dropped.
pub struct RabbitNode {
    pub port: u16,
    pub tls_port: u16,
    pub node: String,
    dir: PathBuf,
    dist_port: u16,
    server: Option<std::process::Child>,
}

impl RabbitNode {
    pub fn start(tls: Option<NodeTls<'_>>) -> Self {
        let dir =
            std::env::temp_dir().join(format!("callbackd-rmq-{}", uuid::Uuid::now_v7().simple()));
        for sub in ["home", "mnesia", "log"] {
            std::fs::create_dir_all(dir.join(sub)).expect("rabbit dirs");
        }
        let cookie = dir.join("home/.erlang.cookie");
        std::fs::copy("/var/lib/rabbitmq/.erlang.cookie", &cookie).expect("erlang cookie");
        run("chmod", &["400", cookie.to_str().expect("utf-8")]);
        std::fs::write(dir.join("plugins"), "[].").expect("plugins file");
        std::fs::write(dir.join("env.conf"), "").expect("env file");
        let (port, tls_port, dist_port) = (free_port(), free_port(), free_port());
        let mut conf = format!("listeners.tcp.default = 127.0.0.1:{port}\nloopback_users = none\n");
        if let Some(tls) = tls {
            conf.push_str(&format!(
                "listeners.ssl.default = 127.0.0.1:{tls_port}\n\
                 ssl_options.cacertfile = {}\nssl_options.certfile = {}\nssl_options.keyfile = {}\n\
                 ssl_options.verify = verify_none\nssl_options.fail_if_no_peer_cert = false\n",
                tls.ca.display(),
                tls.cert.display(),
                tls.key.display()
            ));
        }
        std::fs::write(dir.join("rabbitmq.conf"), conf).expect("rabbitmq.conf");
        let node = format!(
            "cbha{}@localhost",
            &uuid::Uuid::now_v7().simple().to_string()[20..]
        );
        let mut rabbit = Self {
            port,
            tls_port,
            node,
            dir,
            dist_port,
            server: None,
        };
        rabbit.boot();
        rabbit
    }

    /// Starts the node (again) and waits until it is up.
    pub fn boot(&mut self) {
        let path = |sub: &str| self.dir.join(sub).to_string_lossy().into_owned();
        let server = Command::new("setsid")
            .arg("/usr/lib/rabbitmq/bin/rabbitmq-server")
            .current_dir(&self.dir)
            .env("HOME", path("home"))
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", path("mnesia"))
            .env("RABBITMQ_LOG_BASE", path("log"))
            .env("RABBITMQ_CONFIG_FILE", path("rabbitmq.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", path("plugins"))
            .env("RABBITMQ_CONF_ENV_FILE", path("env.conf"))
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rabbitmq-server starts");
        self.server = Some(server);
        let started = Instant::now();
        while !self.ctl(&["await_startup", "--timeout", "2"]) {
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "RabbitMQ node {} did not start",
                self.node
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Stops the node (its data stays, to start it again).
    pub fn halt(&mut self) {
        if !self.ctl(&["stop"])
            && let Some(server) = self.server.as_mut()
        {
            let _ = server.kill();
        }
        if let Some(mut server) = self.server.take() {
            let _ = server.wait();
        }
    }

    /// Joins the cluster of `other`.
    pub fn join(&self, other: &RabbitNode) {
        assert!(self.ctl(&["stop_app"]), "stop_app");
        assert!(self.ctl(&["join_cluster", &other.node]), "join_cluster");
        assert!(self.ctl(&["start_app"]), "start_app");
        assert!(self.ctl(&["await_startup", "--timeout", "60"]), "started");
    }

    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// What `rabbitmqctl` prints, for reading the cluster's state.
    pub fn ctl_output(&self, args: &[&str]) -> String {
        Command::new("rabbitmqctl")
            .arg("-n")
            .arg(&self.node)
            .arg("-q")
            .args(args)
            .env("HOME", self.dir.join("home"))
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    pub fn ctl(&self, args: &[&str]) -> bool {
        Command::new("rabbitmqctl")
            .arg("-n")
            .arg(&self.node)
            .arg("-q")
            .args(args)
            .env("HOME", self.dir.join("home"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for RabbitNode {
    fn drop(&mut self) {
        self.halt();
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
        let dir = std::env::temp_dir().join(format!(
            "callbackd-pgpair-{}",
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&dir).expect("pair dir");
        run(
            "chown",
            &["postgres:postgres", dir.to_str().expect("utf-8")],
        );
        let (primary_port, replica_port) = (free_port(), free_port());
        let primary = dir.join("primary");
        let out = as_postgres(
            "initdb",
            &[
                "-A",
                "trust",
                "-U",
                "postgres",
                "-D",
                primary.to_str().expect("utf-8"),
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
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

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("config file");
    std::io::Write::write_all(&mut file, text.as_bytes()).expect("config written");
}
