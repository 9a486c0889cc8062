//! Test support: a throw-away SoftHSM2 token in a temporary directory, for the PKCS#11 tests of
//! this crate and of the `synod` CLI. Production code has no use for it.
//!
//! The rule every such test keeps: when `CI=true` a missing SoftHSM2 fails the test; elsewhere
//! the test says plainly that it did not run ([`module_or_skip`]).

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The user PIN of a [`TestToken`] (written to its [`pin_file`](TestToken::pin_file)).
pub const USER_PIN: &str = "87654321";
/// The security officer's PIN of a [`TestToken`].
pub const SO_PIN: &str = "12345678";

/// The SoftHSM2 PKCS#11 module, if SoftHSM2 is installed: `softhsm2-util` runs and the module is
/// at `$SOFTHSM2_MODULE` or one of the usual Debian/Ubuntu paths.
pub fn module() -> Option<PathBuf> {
    let util = Command::new("softhsm2-util").arg("--version").output();
    if !util.is_ok_and(|o| o.status.success()) {
        return None;
    }
    [
        std::env::var("SOFTHSM2_MODULE").unwrap_or_default(),
        "/usr/lib/softhsm/libsofthsm2.so".into(),
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so".into(),
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so".into(),
        "/usr/local/lib/softhsm/libsofthsm2.so".into(),
    ]
    .into_iter()
    .filter(|c| !c.is_empty())
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// The SoftHSM2 module for the test described by `test` (e.g. "the HSM test"). Without SoftHSM2
/// it panics when `CI=true`, and elsewhere prints that `test` did NOT run and returns `None`, so
/// the test can return.
#[expect(
    clippy::panic,
    reason = "test support: under CI=true a missing SoftHSM2 must fail the test that asked"
)]
#[track_caller]
pub fn module_or_skip(test: &str) -> Option<PathBuf> {
    let found = module();
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but SoftHSM2 is not installed: run `bash .ci/install-softhsm`");
        }
        eprintln!(
            "NOTE: {test} did NOT run: SoftHSM2 is not installed (run `bash .ci/install-softhsm`)"
        );
    }
    found
}

/// A SoftHSM2 token initialised in a directory of its own. Only processes that see
/// `SOFTHSM2_CONF` = [`conf`](Self::conf) find it: set it on each child process, or in the
/// environment of a test binary that runs a single test.
#[derive(Clone, Debug)]
pub struct TestToken {
    /// The SoftHSM2 configuration file that points at the token directory.
    pub conf: PathBuf,
    /// The token's label.
    pub label: String,
    /// A file holding [`USER_PIN`] on its first line.
    pub pin_file: PathBuf,
}

impl TestToken {
    /// Initialises a token labelled `label` under `dir` (which the caller owns and removes):
    /// `dir/tokens`, `dir/softhsm2.conf` and the PIN file `dir/pin`.
    pub fn init(dir: &Path, label: &str) -> io::Result<Self> {
        let tokens = dir.join("tokens");
        std::fs::create_dir(&tokens)?;
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )?;
        let init = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", label])
            .args(["--so-pin", SO_PIN, "--pin", USER_PIN])
            .env("SOFTHSM2_CONF", &conf)
            .output()?;
        if !init.status.success() {
            return Err(io::Error::other(format!(
                "softhsm2-util --init-token failed ({}): {}",
                init.status,
                String::from_utf8_lossy(&init.stderr)
            )));
        }
        let pin_file = dir.join("pin");
        std::fs::write(&pin_file, format!("{USER_PIN}\n"))?;
        Ok(Self {
            conf,
            label: label.to_owned(),
            pin_file,
        })
    }
}
