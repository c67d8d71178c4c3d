//! The model files a deployment expects, as listed in `config/models.lock`, and whether each
//! is installed intact: what `cabildo models list` shows.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

/// One file of the lock list.
#[derive(Debug, Clone, Serialize)]
pub struct ModelFile {
    /// The model it belongs to (`e5-small`).
    pub model: String,
    /// What it is for.
    pub role: String,
    /// The registry package it comes from (`pypi:…`, `npm:…`, or `assemble` for a file made of
    /// parts).
    pub package: String,
    /// Its path under the models folder.
    pub file: String,
    /// Expected sha256.
    pub sha256: String,
}

/// A file's state on disk.
#[derive(Debug, Clone, Serialize)]
pub struct FileState {
    /// The file.
    #[serde(flatten)]
    pub entry: ModelFile,
    /// Size in bytes when present.
    pub bytes: Option<u64>,
    /// `ok`, `missing` or `corrupt` (hash differs; only checked when asked).
    pub status: &'static str,
}

/// Parses the lock list.
pub fn read_lock(path: &Path) -> std::io::Result<Vec<ModelFile>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        // Parts of a multi-part file are removed once it is assembled.
        .filter(|l| !l.split('\t').nth(4).is_some_and(|f| f.contains(".part")))
        .filter_map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            (c.len() == 6).then(|| ModelFile {
                model: c[0].into(),
                role: c[1].into(),
                package: c[2].into(),
                file: c[4].into(),
                sha256: c[5].into(),
            })
        })
        .collect())
}

fn sha256_of(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

/// States of all listed files under `models_dir`; hashes are checked when `verify`.
pub fn inspect(entries: &[ModelFile], models_dir: &Path, verify: bool) -> Vec<FileState> {
    entries
        .iter()
        .map(|e| {
            let path: PathBuf = models_dir.join(&e.file);
            let bytes = std::fs::metadata(&path).ok().map(|m| m.len());
            let status = match bytes {
                None => "missing",
                Some(_) if verify => match sha256_of(&path) {
                    Ok(h) if h == e.sha256 => "ok",
                    _ => "corrupt",
                },
                Some(_) => "ok",
            };
            FileState {
                entry: e.clone(),
                bytes,
                status,
            }
        })
        .collect()
}
