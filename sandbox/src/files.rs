//! The files a caller sends with a program, and the paths it wants back.
//!
//! SandboxFusion's API carries them (`files`: path → base64, `fetch_files`: paths), and
//! graders depend on them: a testing harness module the program imports, test cases as JSON,
//! an output file read back. Here they never touch a disk: the guest keeps them in the
//! interpreter's memory (`sandbox/guest/python/files.py`), where the host's reset after
//! every item takes back whatever an item wrote. What the host does is check them on the
//! way in: paths inside the working directory only, valid base64, and the operator's limits
//! on their number and size.

use azr_guest_contract::SentFile;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// Files a program finds in its working directory, and the paths every item's outcome
/// carries back (missing ones are left out, as SandboxFusion leaves them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Files {
    /// Relative paths, contents in standard base64, in the order they are written (a later
    /// entry for the same path wins).
    #[serde(default)]
    pub sent: Vec<SentFile>,
    /// Paths to read back after each item, as the caller wrote them.
    #[serde(default)]
    pub fetch: Vec<String>,
    /// Most bytes of files one outcome carries back.
    #[serde(default = "default_fetch_cap")]
    pub fetch_cap: u64,
}

fn default_fetch_cap() -> u64 {
    FileLimits::default().max_bytes
}

/// The operator's limits on what a request's files may hold (`[server]` in the daemon's
/// TOML: `files_max_count`, `files_max_bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimits {
    /// Most files one program may be sent.
    pub max_count: usize,
    /// Most bytes of content (decoded) one program may be sent, and one outcome may carry
    /// back.
    pub max_bytes: u64,
}

impl Default for FileLimits {
    fn default() -> Self {
        FileLimits {
            max_count: 256,
            max_bytes: 8 << 20,
        }
    }
}

/// Why a request's files were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilesError {
    #[error("file path {0:?} is not allowed: {1}")]
    BadPath(String, &'static str),
    #[error("file {0:?} is not valid base64: {1}")]
    BadBase64(String, String),
    #[error("{0} files sent, more than the {1} allowed (server.files_max_count)")]
    TooMany(usize, usize),
    #[error("{0} bytes of files sent, more than the {1} allowed (server.files_max_bytes)")]
    TooLarge(u64, u64),
}

const MAX_PATH_BYTES: usize = 4096;
const MAX_NAME_BYTES: usize = 255;

static NONE: Files = Files {
    sent: Vec::new(),
    fetch: Vec::new(),
    fetch_cap: 0,
};

impl Files {
    /// No files, nothing to fetch.
    pub fn none() -> &'static Files {
        &NONE
    }

    /// Whether there are neither files nor paths to fetch (serde's skip test).
    pub fn is_none(&self) -> bool {
        self.sent.is_empty() && self.fetch.is_empty()
    }

    /// Files from raw contents (gRPC's `bytes`), checked.
    pub fn from_bytes<'a>(
        sent: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        fetch: Vec<String>,
        limits: FileLimits,
    ) -> Result<Files, FilesError> {
        let engine = &base64::engine::general_purpose::STANDARD;
        Files::checked(
            sent.into_iter().map(|(path, content)| {
                check_path(path)?;
                Ok((path, content.len() as u64, engine.encode(content)))
            }),
            fetch,
            limits,
        )
    }

    /// Files from base64 contents (SandboxFusion's JSON), checked; the contents are
    /// decoded as Python's `base64.b64decode` decodes them (characters outside the alphabet
    /// ignored, padding required) and passed on in canonical form.
    pub fn from_base64<'a>(
        sent: impl IntoIterator<Item = (&'a str, &'a str)>,
        fetch: Vec<String>,
        limits: FileLimits,
    ) -> Result<Files, FilesError> {
        let engine = &base64::engine::general_purpose::STANDARD;
        Files::checked(
            sent.into_iter().map(|(path, text)| {
                check_path(path)?;
                let alphabet: String = text
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
                    .collect();
                let content = engine
                    .decode(alphabet.as_bytes())
                    .map_err(|e| FilesError::BadBase64(path.to_owned(), e.to_string()))?;
                let base64 = if alphabet.len() == text.len() {
                    alphabet
                } else {
                    engine.encode(&content)
                };
                Ok((path, content.len() as u64, base64))
            }),
            fetch,
            limits,
        )
    }

    /// Gathers `(path, decoded length, canonical base64)` entries, then holds the limits.
    fn checked<'a>(
        entries: impl IntoIterator<Item = Result<(&'a str, u64, String), FilesError>>,
        fetch: Vec<String>,
        limits: FileLimits,
    ) -> Result<Files, FilesError> {
        let mut sent = Vec::new();
        let mut total = 0u64;
        for entry in entries {
            let (path, len, base64) = entry?;
            total = total.saturating_add(len);
            sent.push(SentFile {
                path: path.to_owned(),
                base64,
            });
        }
        if sent.len() > limits.max_count {
            return Err(FilesError::TooMany(sent.len(), limits.max_count));
        }
        if total > limits.max_bytes {
            return Err(FilesError::TooLarge(total, limits.max_bytes));
        }
        Ok(Files {
            sent,
            fetch,
            fetch_cap: limits.max_bytes,
        })
    }

    /// Bytes of text the files add to a request (for its size limit).
    pub fn text_len(&self) -> usize {
        self.sent
            .iter()
            .map(|f| f.path.len() + f.base64.len())
            .chain(self.fetch.iter().map(String::len))
            .sum()
    }
}

/// A sent file's path must stay inside the working directory: relative, no `..`, no empty
/// or over-long name, no NUL. (Absolute paths, which SandboxFusion writes wherever they
/// point on its host, have nowhere to point here: refused rather than quietly moved.)
fn check_path(path: &str) -> Result<(), FilesError> {
    let refuse = |why| Err(FilesError::BadPath(path.to_owned(), why));
    if path.is_empty() {
        return refuse("it is empty");
    }
    if path.len() > MAX_PATH_BYTES {
        return refuse("it is longer than 4096 bytes");
    }
    if path.contains('\0') {
        return refuse("it contains a NUL byte");
    }
    if path.starts_with('/') {
        return refuse(
            "absolute paths are not allowed; paths are relative to the working directory",
        );
    }
    if path.ends_with('/') {
        return refuse("it names a directory, not a file");
    }
    let mut names = 0;
    for name in path.split('/') {
        match name {
            "" | "." => {}
            ".." => return refuse("`..` is not allowed"),
            n if n.len() > MAX_NAME_BYTES => {
                return refuse("a name in it is longer than 255 bytes");
            }
            _ => names += 1,
        }
    }
    if names == 0 {
        return refuse("it names the working directory itself");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(files: &[(&str, &str)]) -> Result<Files, FilesError> {
        Files::from_base64(files.iter().copied(), Vec::new(), FileLimits::default())
    }

    #[test]
    fn paths_that_leave_the_working_directory_are_refused() {
        for path in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/..",
            "dir/",
            ".",
            "./",
            "a\0b",
            "//x",
        ] {
            assert!(
                matches!(b64(&[(path, "")]), Err(FilesError::BadPath(..))),
                "{path:?} was accepted"
            );
        }
        let long = "x".repeat(256);
        assert!(b64(&[(long.as_str(), "")]).is_err());
        for path in [
            "a.txt",
            "dir1/dir2/secret_flag",
            "./tests.json",
            "a//b.py",
            "..x",
        ] {
            assert!(b64(&[(path, "")]).is_ok(), "{path:?} was refused");
        }
    }

    #[test]
    fn base64_is_read_as_pythons_b64decode_reads_it() {
        let files = b64(&[("a", "aGVs\nbG8=")]).unwrap();
        assert_eq!(files.sent[0].base64, "aGVsbG8=");
        assert!(matches!(
            b64(&[("a", "aGVsbG8")]),
            Err(FilesError::BadBase64(..))
        ));
        assert!(b64(&[("a", "")]).is_ok());
    }

    #[test]
    fn the_count_and_size_limits_hold_for_both_encodings() {
        let limits = FileLimits {
            max_count: 2,
            max_bytes: 4,
        };
        let three = [("a", &b""[..]), ("b", b""), ("c", b"")];
        assert_eq!(
            Files::from_bytes(three, vec![], limits),
            Err(FilesError::TooMany(3, 2))
        );
        assert_eq!(
            Files::from_bytes([("a", &b"hello"[..])], vec![], limits),
            Err(FilesError::TooLarge(5, 4))
        );
        assert_eq!(
            Files::from_base64([("a", "aGVsbG8=")], vec![], limits),
            Err(FilesError::TooLarge(5, 4))
        );
        let ok = Files::from_bytes([("a", &b"hell"[..])], vec!["out".into()], limits).unwrap();
        assert_eq!((ok.sent[0].base64.as_str(), ok.fetch_cap), ("aGVsbA==", 4));
    }
}
