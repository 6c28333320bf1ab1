//! A RabbitMQ node of its own, with a TLS listener when asked.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, run};

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
        self.rabbitmqctl(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    pub fn ctl(&self, args: &[&str]) -> bool {
        self.rabbitmqctl(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// `rabbitmqctl` for this node, quiet.
    fn rabbitmqctl(&self, args: &[&str]) -> Command {
        let mut command = Command::new("rabbitmqctl");
        command
            .arg("-n")
            .arg(&self.node)
            .arg("-q")
            .args(args)
            .env("HOME", self.dir.join("home"));
        command
    }
}

impl Drop for RabbitNode {
    fn drop(&mut self) {
        self.halt();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
