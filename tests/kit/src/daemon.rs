//! The daemon as a real child process — started for a test's database and exchange, or for
//! the benchmark's — stopped with SIGTERM or SIGKILL, its log kept for failure messages,
//! and killed when dropped (even when the test fails).

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::app::TestApp;
use crate::cli::callbackd_bin;

/// A `callbackd` child process.
pub struct Daemon {
    pub child: Child,
    /// Its stderr (the JSON log) in a file of its own, removed with it; `None` when the log
    /// went elsewhere (the terminal with `TEST_LOG`, or where the caller sent it).
    log: Option<PathBuf>,
}

impl Daemon {
    /// Dispatching for `app`'s database and exchange.
    pub fn start(app: &TestApp, name: &str, batch_size: u32) -> Self {
        Self::start_on(app, name, batch_size, "127.0.0.1:0")
    }

    /// Listening for HTTP on `listen`.
    pub fn start_on(app: &TestApp, name: &str, batch_size: u32, listen: &str) -> Self {
        let mut command = Command::new(callbackd_bin());
        command
            .envs(app.child_env())
            .env("CALLBACKD_API__LISTEN", listen)
            .env("CALLBACKD_DISPATCH__INSTANCE_NAME", name)
            .env("CALLBACKD_DISPATCH__BATCH_SIZE", batch_size.to_string())
            .env("CALLBACKD_DISPATCH__SHUTDOWN_DEADLINE_MS", "5000");
        Self::spawn(command, name)
    }

    /// Runs `command` (the daemon) with a JSON log kept in a file of its own, unless
    /// `TEST_LOG` sends it to the terminal.
    pub fn spawn(command: Command, name: &str) -> Self {
        Self::spawn_logging(command, name, std::env::var_os("TEST_LOG").is_none())
    }

    /// As [`Daemon::spawn`], the log kept in its file whatever `TEST_LOG` says: for tests
    /// that read it.
    pub fn spawn_keeping_log(command: Command, name: &str) -> Self {
        Self::spawn_logging(command, name, true)
    }

    fn spawn_logging(mut command: Command, name: &str, keep: bool) -> Self {
        let log = keep.then(|| {
            std::env::temp_dir().join(format!(
                "callbackd-{name}-{}.log",
                uuid::Uuid::now_v7().simple()
            ))
        });
        let stderr = match &log {
            Some(path) => Stdio::from(File::create(path).expect("daemon log file")),
            None => Stdio::inherit(),
        };
        let child = command
            .env("CALLBACKD_LOG__FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("callbackd starts");
        Self { child, log }
    }

    /// Runs `command` (the daemon) with its JSON log written to `log`, a file the caller
    /// keeps (the benchmark's run directory).
    pub fn spawn_with_log(mut command: Command, log: File) -> io::Result<Self> {
        let child = command
            .env("CALLBACKD_LOG__FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        Ok(Self { child, log: None })
    }

    /// A child started by the test itself, its log wherever the test sent it.
    pub fn adopt(child: Child) -> Self {
        Self { child, log: None }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if the process has ended.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// SIGTERM, then the exit status and how long the stop took.
    pub fn terminate(&mut self) -> (ExitStatus, Duration) {
        let started = Instant::now();
        let sent = sigterm(&self.child).expect("kill runs");
        assert!(sent.success());
        let status = self.wait_for_exit(Duration::from_secs(30), "did not stop after SIGTERM");
        if !status.success() {
            eprintln!(
                "callbackd exited with {status}; its log ends:\n{}",
                self.log_tail()
            );
        }
        (status, started.elapsed())
    }

    /// SIGTERM, up to `grace` for the soft stop, SIGKILL after that.
    pub fn stop(&mut self, grace: Duration) -> io::Result<()> {
        stop(&mut self.child, grace)
    }

    /// The exit status, once the process has ended; fails with `failure` and the log's end
    /// when it has not within `within`.
    pub fn wait_for_exit(&mut self, within: Duration, failure: &str) -> ExitStatus {
        match wait_within(&mut self.child, within).expect("try_wait") {
            Some(status) => status,
            None => panic!("{failure} within {within:?}: {}", self.log_tail()),
        }
    }

    /// The daemon's log so far ("" when it is not kept here).
    pub fn log(&self) -> String {
        self.log
            .as_ref()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .unwrap_or_default()
    }

    /// The last lines of the daemon's log, for a failure message.
    pub fn log_tail(&self) -> String {
        if self.log.is_none() {
            return "(not kept here: TEST_LOG is set, or the test chose where it went)".into();
        }
        let text = self.log();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Waits until the log has a line with `message`.
    pub async fn wait_for_log(&self, message: &str, timeout: Duration) {
        let started = Instant::now();
        while !self.log().contains(message) {
            assert!(
                started.elapsed() < timeout,
                "no {message:?} in the log within {timeout:?}: {}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(path) = &self.log {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Sends SIGTERM to `child`; the `kill` command's exit status.
pub fn sigterm(child: &Child) -> io::Result<ExitStatus> {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
}

/// Polls until `child` has exited (its status) or `within` has passed (`None`).
pub fn wait_within(child: &mut Child, within: Duration) -> io::Result<Option<ExitStatus>> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if started.elapsed() >= within {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM, up to `grace` for the soft stop, SIGKILL after that (any child process).
pub fn stop(child: &mut Child, grace: Duration) -> io::Result<()> {
    if child.try_wait()?.is_some() {
        return Ok(());
    }
    let _ = sigterm(child);
    if wait_within(child, grace)?.is_none() {
        child.kill()?;
        child.wait()?;
    }
    Ok(())
}
