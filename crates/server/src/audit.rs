//! What the API leaves in the audit log: one record per request that reads documents or
//! changes them, with the principal pseudonymised (keyed HMAC, so the log alone does not say
//! who asked) and personal data redacted from the question.

use std::path::Path;
use std::time::Instant;

use cabildo_core::{Filters, Principal};
use cabildo_engine::answer::Answer;
use cabildo_store::{AnswerRecord, AuditRecord, Registry, StoreError};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Writes audit records.
pub struct Auditor {
    registry: Registry,
    /// Key for principal pseudonyms, kept in the data folder (`audit.key`).
    key: Vec<u8>,
}

/// Who asked what: owned, so a stream's task can keep it until the answer is complete.
pub struct Visit {
    /// Who.
    pub principal: Principal,
    /// The route (`/v1/ask`).
    pub route: &'static str,
    /// When the request started.
    pub started: Instant,
    /// The question or query (redacted before it is stored).
    pub question: Option<String>,
    /// The filters retrieval ran with.
    pub filters: Option<Filters>,
}

/// How it ended.
#[derive(Default)]
pub struct Outcome<'a> {
    /// HTTP status.
    pub status: u16,
    /// Passages whose text was returned.
    pub passages: Vec<String>,
    /// The answer delivered (kept for feedback, its id in the record).
    pub answer: Option<&'a Answer>,
    /// The answer rated, for feedback.
    pub rated: Option<&'a str>,
    /// The feedback stored.
    pub feedback_id: Option<i64>,
}

impl<'a> Outcome<'a> {
    /// Only a status: nothing returned.
    pub fn status(status: u16) -> Self {
        Outcome {
            status,
            ..Outcome::default()
        }
    }

    /// A delivered answer: its cited passages, text, model and id.
    pub fn answer(a: &'a Answer) -> Self {
        Outcome {
            status: 200,
            passages: a.citations.iter().map(|c| c.passage_id.clone()).collect(),
            answer: Some(a),
            ..Outcome::default()
        }
    }
}

impl Auditor {
    /// An auditor writing to `registry`, with the pseudonym key `key` (replicas share it),
    /// or else the one in `data_dir/audit.key` (created, readable by the owner only, on
    /// first start).
    pub fn open(registry: Registry, data_dir: &Path, key: Option<&str>) -> std::io::Result<Self> {
        if let Some(key) = key {
            return Ok(Auditor {
                registry,
                key: key.as_bytes().to_vec(),
            });
        }
        let path = data_dir.join("audit.key");
        let key = match std::fs::read(&path) {
            Ok(key) if key.len() >= 32 => key,
            Ok(_) => {
                return Err(std::io::Error::other(format!(
                    "{} is shorter than 32 bytes",
                    path.display()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = vec![0u8; 32];
                getrandom::fill(&mut key).map_err(std::io::Error::other)?;
                write_private(&path, &key)?;
                key
            }
            Err(e) => return Err(e),
        };
        Ok(Auditor { registry, key })
    }

    /// A stable pseudonym for a principal: the same caller always gets the same one, and
    /// without the key it cannot be traced back.
    pub fn pseudonym(&self, principal: &Principal) -> String {
        if principal.subject == "anonymous" {
            return "anonymous".into();
        }
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(principal.subject.as_bytes());
        let tag = mac.finalize().into_bytes();
        format!("p-{}", hex::encode(&tag[..12]))
    }

    /// Appends the record of one request; a delivered answer is kept first, with the
    /// question redacted, for feedback on it.
    pub async fn record(&self, visit: &Visit, outcome: Outcome<'_>) -> Result<(), StoreError> {
        let at = now();
        let principal = self.pseudonym(&visit.principal);
        let question = visit
            .question
            .as_deref()
            .map(|q| cabildo_text::redact_pii(q).into_owned());
        if let Some(a) = outcome.answer.filter(|a| !a.id.is_empty()) {
            self.registry
                .put_answer(&AnswerRecord {
                    id: a.id.clone(),
                    at: at.clone(),
                    principal: principal.clone(),
                    route: visit.route.to_string(),
                    question: question.clone().unwrap_or_default(),
                    answer: a.answer.clone(),
                    citations: serde_json::to_value(&a.citations).unwrap_or_default(),
                    abstained: a.abstained,
                    model: a.model.clone(),
                })
                .await?;
        }
        let model = outcome.answer.map(|a| a.model.clone());
        let record = AuditRecord {
            at,
            principal,
            role: visit.principal.role.to_string(),
            route: visit.route.to_string(),
            status: outcome.status,
            question,
            filters: visit
                .filters
                .as_ref()
                .and_then(|f| serde_json::to_string(f).ok()),
            passages: outcome.passages,
            answer_hash: outcome
                .answer
                .map(|a| cabildo_text::content_hash(a.answer.as_bytes())),
            prompt_version: model
                .as_ref()
                .map(|_| cabildo_engine::answer::prompt::version().to_string()),
            model,
            latency_ms: (visit.started.elapsed().as_secs_f64() * 10_000.0).round() / 10.0,
            answer_id: outcome
                .answer
                .map(|a| a.id.clone())
                .filter(|id| !id.is_empty())
                .or(outcome.rated.map(str::to_string)),
            feedback_id: outcome.feedback_id,
        };
        self.registry.append_audit(&record).await.map(|_| ())
    }
}

/// Now, as the registry keeps times (RFC 3339, UTC, milliseconds).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}
