//! The `callbackd` binary's commands (`migrate`, `user`, `callbacks`, `import`, …), run as
//! a child process the way an operator runs them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::app::TestApp;

/// The `callbackd` binary cargo built for the running test or bench: cargo names it in
/// `CARGO_BIN_EXE_callbackd` at run time; older cargo only at build time, and then it is the
/// one beside the `deps/` folder this executable runs from.
pub fn callbackd_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("CARGO_BIN_EXE_callbackd") {
        return path.into();
    }
    let exe = std::env::current_exe().expect("the running executable's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("the executable runs from target/<profile>/deps")
        .join(format!("callbackd{}", std::env::consts::EXE_SUFFIX))
}

/// The binary with a JSON log and no operator named by the environment
/// (`CALLBACKD_OPERATOR`): the caller points it at a database.
pub fn command() -> Command {
    let mut command = Command::new(callbackd_bin());
    command
        .env("CALLBACKD_LOG__FORMAT", "json")
        .env_remove("CALLBACKD_OPERATOR");
    command
}

/// The binary pointed at this test's database, exchange and queues.
pub fn callbackd(app: &TestApp) -> Command {
    let mut command = command();
    command.envs(app.child_env());
    command
}

/// Runs a command against this test's database; its output, whatever its exit status.
pub fn run(app: &TestApp, args: &[&str]) -> Output {
    callbackd(app).args(args).output().expect("runs")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
