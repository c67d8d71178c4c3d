//! What a parser knows about a file before reading its content: the defaults given on the
//! command line, the jurisdiction implied by the folder it sits in, and the title of the
//! collection it belongs to (a constitution published one file per article).

use std::path::{Path, PathBuf};

use cabildo_core::{AccessLevel, Jurisdiction, Language, Norm, NormKind};
use cabildo_text::{content_hash, slug};

/// Defaults applied to every norm of an ingest run, unless the source says otherwise.
/// (Serialised with a queued job, for the worker that runs it.)
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct IngestDefaults {
    /// ISO 3166-1 alpha-2 country when neither the source nor the path tells.
    pub jurisdiction: Option<String>,
    /// Access level of the ingested norms.
    pub access: AccessLevel,
    /// Owning tenant of the ingested norms.
    pub tenant: Option<String>,
    /// Replace personal data (national ids, e-mails, phones) in passage text with
    /// placeholders before indexing.
    pub redact_pii: bool,
}

/// The tenant that shares an internal or restricted document with every agency cleared
/// for it (stored as no tenant).
pub const EVERY_TENANT: &str = "*";

impl IngestDefaults {
    /// Who the documents belong to, checked: an internal or restricted document belongs to
    /// one agency (its tenant) unless it is shared with every agency on purpose
    /// ([`EVERY_TENANT`], read here as no tenant). A non-public document with no tenant at
    /// all is refused, so that none is shared by omission.
    pub fn checked(mut self) -> Result<IngestDefaults, String> {
        match self.tenant.as_deref().map(str::trim) {
            Some(EVERY_TENANT) => self.tenant = None,
            Some("") | None if self.access != AccessLevel::Public => {
                return Err(format!(
                    "{} documents belong to an agency: give its tenant, or \"{EVERY_TENANT}\" \
                     to share them with every agency cleared for them",
                    self.access
                ))
            }
            Some("") => self.tenant = None,
            _ => {}
        }
        Ok(self)
    }
}

/// Files that describe a collection rather than hold a norm: skipped, not failed.
pub fn is_metadata_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    name.starts_with('.')
        || [
            "readme",
            "license",
            "licence",
            "notice",
            "manifest",
            "source.md",
            "changelog",
        ]
        .iter()
        .any(|p| name.starts_with(p))
}

const COUNTRIES: [&str; 10] = ["ar", "br", "cl", "co", "es", "mx", "pe", "uy", "ec", "bo"];

/// A file being parsed, with what its path tells.
pub(crate) struct FileContext<'a> {
    pub path: &'a Path,
    pub bytes: &'a [u8],
    pub defaults: &'a IngestDefaults,
    /// Title of the collection the file belongs to, from the nearest README that names a norm.
    pub collection_title: Option<String>,
    /// Folder holding that README: ids are made relative to it.
    pub collection_root: Option<PathBuf>,
}

impl<'a> FileContext<'a> {
    pub fn new(path: &'a Path, bytes: &'a [u8], defaults: &'a IngestDefaults) -> Self {
        let (collection_title, collection_root) = find_collection(path).unzip();
        FileContext {
            path,
            bytes,
            defaults,
            collection_title,
            collection_root,
        }
    }

    /// The country from the defaults, else from a path component (`…/cl/…`), else `ZZ`
    /// (ISO 3166's "unknown").
    pub fn jurisdiction(&self) -> Jurisdiction {
        if let Some(j) = &self.defaults.jurisdiction {
            return Jurisdiction::country(j);
        }
        let from_path = self
            .path
            .components()
            .rev()
            .filter_map(|c| c.as_os_str().to_str())
            .find(|c| COUNTRIES.contains(&c.to_ascii_lowercase().as_str()));
        Jurisdiction::country(from_path.unwrap_or("ZZ"))
    }

    /// The file name without extension.
    pub fn stem(&self) -> String {
        self.path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("document")
            .to_string()
    }

    /// An id from the file's place: `{country}-{collection}-{relative path}` or
    /// `{country}-{parent}-{stem}`, so files named alike in different folders stay apart.
    pub fn path_id(&self, jurisdiction: &Jurisdiction) -> String {
        let country = jurisdiction.country.to_ascii_lowercase();
        let no_ext = self.path.with_extension("");
        let rel: Vec<String> = match &self.collection_root {
            Some(root) => {
                let name = root
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("collection");
                let inner = no_ext.strip_prefix(root).unwrap_or(&no_ext);
                std::iter::once(name.to_string())
                    .chain(
                        inner
                            .components()
                            .map(|c| c.as_os_str().to_string_lossy().into()),
                    )
                    .collect()
            }
            None => no_ext
                .components()
                .rev()
                .take(2)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .map(|c| c.as_os_str().to_string_lossy().into())
                .collect(),
        };
        format!("{country}-{}", slug(&rel.join("-")))
    }

    /// A norm with this file's defaults, hash and path; parsers fill in the rest.
    pub fn norm(
        &self,
        id: String,
        title: String,
        kind: NormKind,
        format: &str,
        language: Language,
    ) -> Norm {
        let jurisdiction = self.jurisdiction();
        Norm {
            id_from_path: id == self.path_id(&jurisdiction),
            id,
            jurisdiction,
            kind,
            number: None,
            title,
            issuing_body: None,
            language,
            official_url: None,
            publication_date: None,
            version_date: None,
            valid_from: None,
            valid_to: None,
            access: self.defaults.access,
            tenant: self.defaults.tenant.clone(),
            content_hash: content_hash(self.bytes),
            format: format.to_string(),
            source_path: self.path.display().to_string(),
        }
    }
}

/// Whether a heading names a norm ("Constitución Política del Perú 1993", "Ley 19.628").
fn names_a_norm(heading: &str) -> bool {
    let h = heading.trim().to_lowercase();
    [
        "constituci",
        "ley ",
        "lei ",
        "código",
        "codigo",
        "decreto",
        "reglamento",
        "resoluci",
    ]
    .iter()
    .any(|p| h.starts_with(p))
}

/// Walks up to three folders from the file looking for a README whose first heading names a
/// norm: the title shared by a norm published as many files.
fn find_collection(path: &Path) -> Option<(String, PathBuf)> {
    let mut dir = path.parent();
    for _ in 0..3 {
        let d = dir?;
        for name in ["README.md", "README_source.md", "README.rst"] {
            let Ok(text) = std::fs::read_to_string(d.join(name)) else {
                continue;
            };
            let heading = text
                .lines()
                .find_map(|l| l.strip_prefix("# "))
                .map(|h| h.trim().to_string());
            if let Some(h) = heading.filter(|h| names_a_norm(h)) {
                return Some((h, d.to_path_buf()));
            }
        }
        dir = d.parent();
    }
    None
}

/// Parses dates as sources write them: `2005-09-22`, `22/09/2005`, `22.09.2005`.
pub(crate) fn parse_date(s: &str) -> Option<chrono::NaiveDate> {
    let s = s.trim();
    let s = s.get(..10).unwrap_or(s);
    ["%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y", "%d-%m-%Y"]
        .iter()
        .find_map(|f| chrono::NaiveDate::parse_from_str(s, f).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_files_are_recognised() {
        assert!(is_metadata_file(Path::new("a/README_source.md")));
        assert!(is_metadata_file(Path::new("a/LICENSE_CC0.txt")));
        assert!(is_metadata_file(Path::new("a/NOTICE_cadrumo.txt")));
        assert!(!is_metadata_file(Path::new("a/ley-19628.md")));
    }

    #[test]
    fn dates_in_regional_formats() {
        let d = chrono::NaiveDate::from_ymd_opt(1967, 2, 2);
        assert_eq!(parse_date("02/02/1967"), d);
        assert_eq!(parse_date("1967-02-02"), d);
        assert_eq!(parse_date("1967-02-02T10:00:00"), d);
    }
}

#[cfg(test)]
mod owner_tests {
    use super::*;

    fn with(access: AccessLevel, tenant: Option<&str>) -> Result<Option<String>, String> {
        IngestDefaults {
            access,
            tenant: tenant.map(str::to_string),
            ..IngestDefaults::default()
        }
        .checked()
        .map(|d| d.tenant)
    }

    #[test]
    fn non_public_documents_need_an_owner_or_an_explicit_everyone() {
        assert_eq!(with(AccessLevel::Public, None), Ok(None));
        assert_eq!(
            with(AccessLevel::Public, Some("sii")),
            Ok(Some("sii".into()))
        );
        assert_eq!(
            with(AccessLevel::Internal, Some("sii")),
            Ok(Some("sii".into()))
        );
        assert_eq!(with(AccessLevel::Restricted, Some("*")), Ok(None));
        assert!(with(AccessLevel::Internal, None).is_err_and(|e| e.contains("tenant")));
        assert!(with(AccessLevel::Restricted, Some("")).is_err());
    }
}
