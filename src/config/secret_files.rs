//! Secrets given as files: every setting that can hold a secret may instead be named by
//! `<VARIABLE>_FILE`, a file holding its value (Docker and Kubernetes secrets, systemd
//! credentials). The file stands in for the environment variable: a flag still wins over it,
//! and it wins over the config file.

use std::ffi::OsString;
use std::path::Path;

use super::Settings;

/// A setting that can hold a secret: its environment variable and where it goes.
struct Secret {
    variable: &'static str,
    field: fn(&mut Settings) -> &mut Option<String>,
}

/// Every setting that can hold a secret.
const SECRETS: &[Secret] = &[
    Secret {
        variable: "HOOKD_DATABASE_URL",
        field: |s| &mut s.database_url,
    },
    Secret {
        variable: "HOOKD_ENCRYPTION_KEYS",
        field: |s| &mut s.encryption_keys,
    },
];

impl Settings {
    /// Fills each secret setting that flags and environment left unset from its `_FILE`
    /// variable, looked up with `env`. Refuses both forms of one setting at once, and a file
    /// that cannot be read or is empty, naming the file (never what it holds).
    pub fn read_secret_files(&mut self, env: impl Fn(&str) -> Option<OsString>) -> anyhow::Result<()> {
        for secret in SECRETS {
            let file_variable = format!("{}_FILE", secret.variable);
            let Some(path) = env(&file_variable) else {
                continue;
            };
            anyhow::ensure!(
                env(secret.variable).is_none(),
                "{} and {file_variable} are both set: give the setting one way",
                secret.variable
            );
            let field = (secret.field)(self);
            if field.is_none() {
                *field = Some(read(&file_variable, Path::new(&path))?);
            }
        }
        Ok(())
    }
}

/// The file's text without its trailing newline (or other trailing white space).
fn read(variable: &str, path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("{variable}: cannot read {}: {e}", path.display()))?;
    let value = text.trim_end();
    anyhow::ensure!(!value.is_empty(), "{variable}: {} is empty", path.display());
    Ok(value.to_string())
}
