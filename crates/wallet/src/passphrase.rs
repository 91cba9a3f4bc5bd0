//! Passphrases that unlock keystore files, and where to read them from.
//!
//! People type them at a terminal prompt that does not echo (the `rpassword` crate reads
//! from the controlling terminal, not standard input). Scripts name an environment variable
//! or a file instead; a file's first line is the passphrase, its line ending stripped.

use std::fmt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// A passphrase, held in memory that is wiped on drop. Its `Debug` form never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Passphrase(Zeroizing<String>);

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

impl Passphrase {
    /// Wraps a passphrase.
    ///
    /// # Errors
    /// [`PassphraseError::Empty`] for an empty string: an empty passphrase protects nothing.
    pub fn new(passphrase: impl Into<String>) -> Result<Self, PassphraseError> {
        let passphrase = Zeroizing::new(passphrase.into());
        if passphrase.is_empty() {
            return Err(PassphraseError::Empty);
        }
        Ok(Self(passphrase))
    }

    /// The passphrase text. Pass it to a key derivation function; never print or log it.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

/// Why no passphrase could be read.
#[derive(Debug, thiserror::Error)]
pub enum PassphraseError {
    /// The passphrase is empty.
    #[error("the passphrase is empty")]
    Empty,
    /// The named environment variable is not set.
    #[error("environment variable {name} is not set (it should hold the passphrase)")]
    EnvMissing {
        /// The variable's name.
        name: String,
    },
    /// The named environment variable is not valid Unicode.
    #[error("environment variable {name} does not hold valid UTF-8 text")]
    EnvNotUnicode {
        /// The variable's name.
        name: String,
    },
    /// The passphrase file could not be read.
    #[error("cannot read the passphrase file {}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The terminal prompt failed (for example when there is no terminal).
    #[error(
        "cannot read a passphrase from the terminal ({0}); give it through an environment variable or a file instead"
    )]
    Prompt(std::io::Error),
    /// The two entries of a new passphrase differ.
    #[error("the two passphrases you typed do not match")]
    Mismatch,
}

/// Where a passphrase comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassphraseSource {
    /// Ask on the controlling terminal without echo.
    Prompt,
    /// Read the named environment variable.
    Env(String),
    /// Read the first line of a file (its `\n` or `\r\n` ending stripped).
    File(PathBuf),
}

impl PassphraseSource {
    /// Reads a passphrase, showing `prompt` if it is asked for on the terminal.
    ///
    /// # Errors
    /// A [`PassphraseError`] naming the source that failed, or [`PassphraseError::Empty`].
    pub fn read(&self, prompt: &str) -> Result<Passphrase, PassphraseError> {
        match self {
            Self::Prompt => Passphrase::new(
                Zeroizing::new(
                    rpassword::prompt_password(prompt).map_err(PassphraseError::Prompt)?,
                )
                .as_str(),
            ),
            Self::Env(name) => {
                let value = std::env::var(name).map_err(|e| match e {
                    std::env::VarError::NotPresent => {
                        PassphraseError::EnvMissing { name: name.clone() }
                    }
                    std::env::VarError::NotUnicode(_) => {
                        PassphraseError::EnvNotUnicode { name: name.clone() }
                    }
                })?;
                Passphrase::new(value)
            }
            Self::File(path) => read_file(path),
        }
    }

    /// Reads a passphrase for a new keystore: at a terminal it is asked twice and both
    /// entries must match; other sources are read once.
    ///
    /// # Errors
    /// As [`PassphraseSource::read`], plus [`PassphraseError::Mismatch`].
    pub fn read_new(&self, prompt: &str, confirm: &str) -> Result<Passphrase, PassphraseError> {
        let first = self.read(prompt)?;
        if *self == Self::Prompt && self.read(confirm)? != first {
            return Err(PassphraseError::Mismatch);
        }
        Ok(first)
    }
}

fn read_file(path: &Path) -> Result<Passphrase, PassphraseError> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|source| PassphraseError::File { path: path.to_path_buf(), source })?,
    );
    let line = text.split('\n').next().unwrap_or_default();
    Passphrase::new(line.strip_suffix('\r').unwrap_or(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_first_line_without_line_ending() {
        let dir = std::env::temp_dir().join(format!("medrec-wallet-pp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pass");
        std::fs::write(&path, "correct horse \r\nsecond line\n").unwrap();
        let p = PassphraseSource::File(path.clone()).read("").unwrap();
        assert_eq!(p.expose_secret(), "correct horse ");
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(PassphraseSource::File(path).read(""), Err(PassphraseError::Empty)));
        let missing = PassphraseSource::File(dir.join("absent")).read("");
        assert!(matches!(missing, Err(PassphraseError::File { .. })));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn env_variable() {
        // A variable that nothing sets; setting variables needs `unsafe` in edition 2024.
        let err =
            PassphraseSource::Env("MEDREC_WALLET_TEST_UNSET_VAR".into()).read("").unwrap_err();
        assert!(err.to_string().contains("MEDREC_WALLET_TEST_UNSET_VAR"));
        let path = PassphraseSource::Env("PATH".into()).read("").unwrap();
        assert!(!path.expose_secret().is_empty());
    }

    #[test]
    fn debug_is_redacted() {
        let p = Passphrase::new("hunter2").unwrap();
        assert!(!format!("{p:?}").contains("hunter2"));
    }
}
