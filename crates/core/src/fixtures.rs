//! What tests across the workspace share (feature `test-fixtures`, dev-dependencies only):
//! a passage to build on, the locator of `../shared` (corpus, evaluation sets, versions) that
//! skips a test cleanly when it is absent, and the check that a model file is installed.

use std::path::{Path, PathBuf};

use crate::{AccessLevel, Jurisdiction, Language, NormKind, Passage};

/// The workspace's root folder: at run time, the nearest folder holding `Cargo.lock` above
/// the package cargo is testing (`CARGO_MANIFEST_DIR` in the test's environment), else the
/// folder this crate was compiled in. The compile-time path alone is not enough: a target
/// folder shared by clones at different paths (CI keeps one under `~/.cache`) can hold this
/// crate compiled in the other clone, and its tests then looked for models there.
pub fn workspace_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .and_then(|dir| {
            dir.ancestors()
                .find(|a| a.join("Cargo.lock").is_file())
                .map(Path::to_path_buf)
        })
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// `../shared/REL` beside the workspace, or `None` with a "skipped" line when this checkout
/// has no such file or folder (CI and developers have it; a bare clone does not).
pub fn shared(rel: &str) -> Option<PathBuf> {
    let path = workspace_root().join("../shared").join(rel);
    if path.exists() {
        Some(path)
    } else {
        eprintln!("skipped: ../shared/{rel} not found");
        None
    }
}

/// The models folder: `$CABILDO_MODELS`, else `models/` in the workspace.
pub fn models_dir() -> PathBuf {
    std::env::var_os("CABILDO_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("models"))
}

/// A file or folder under the models folder, or `None` (with a "skipped" line) when
/// `scripts/setup-models.sh` has not installed it.
pub fn installed_model(rel: &str) -> Option<PathBuf> {
    let path = models_dir().join(rel);
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "skipped: {} not installed (scripts/setup-models.sh)",
            path.display()
        );
        None
    }
}

/// A public Chilean statute's passage `id` of norm `norm_id` holding `text`, with a label
/// and breadcrumb of its own: tests change the fields they care about with `..passage(…)`.
pub fn passage(id: &str, norm_id: &str, text: &str) -> Passage {
    Passage {
        id: id.into(),
        norm_id: norm_id.into(),
        ordinal: 0,
        norm_title: norm_id.into(),
        breadcrumb: vec![norm_id.into()],
        provision: String::new(),
        label: id.into(),
        url: None,
        anchor: None,
        text: text.into(),
        span: None,
        page: None,
        jurisdiction: Jurisdiction::country("CL"),
        kind: NormKind::Ley,
        language: Language::Es,
        access: AccessLevel::Public,
        tenant: None,
        valid_from: None,
        valid_to: None,
    }
}
