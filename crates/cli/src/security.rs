//! Security at the command line: partner API keys (`cabildo clients`), the audit log
//! (`cabildo audit verify|export`), feedback on answers (`cabildo feedback export`), and log
//! output with personal data redacted. (The server's authentication and rate limits are
//! settings: `[auth]` and `[limits]`.)

use std::io::Write;

use anyhow::{bail, Context, Result};
use cabildo_core::settings::{redact_url, Settings};
use cabildo_core::{AccessLevel, AccessRole};
use cabildo_engine::assemble::open_registry;
use cabildo_engine::Engine;
use cabildo_server::auth::{key_hash, new_api_key};
use cabildo_store::{NewClient, Registry};
use clap::Subcommand;

/// `cabildo clients …`
#[derive(Subcommand)]
pub enum ClientsCommand {
    /// Register an API client and print its key (shown once; only its hash is kept).
    Add {
        /// A unique name (e.g. the partner system's).
        name: String,
        /// partner, caseworker or admin.
        #[arg(long, default_value = "partner")]
        role: AccessRole,
        /// Its agency.
        #[arg(long)]
        tenant: Option<String>,
        /// public, internal or restricted (within its tenant).
        #[arg(long, default_value = "public")]
        clearance: AccessLevel,
        /// Requests per UTC day (default: the server's --partner-daily-quota).
        #[arg(long)]
        daily_quota: Option<u64>,
    },
    /// List clients (never their keys).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a client's key at once.
    Revoke {
        /// Its name.
        name: String,
    },
}

/// `cabildo audit …`
#[derive(Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain: exit status 1 and the breaks found if any record was edited,
    /// deleted or removed from the end.
    Verify {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print records as JSON lines.
    Export {
        /// First UTC day (YYYY-MM-DD).
        #[arg(long)]
        from: chrono::NaiveDate,
        /// Last UTC day, included (default: --from).
        #[arg(long)]
        to: Option<chrono::NaiveDate>,
    },
}

/// `cabildo feedback …`
#[derive(Subcommand)]
pub enum FeedbackCommand {
    /// Feedback on answers, for the team that reviews them: when, the rating, the comment,
    /// the question (redacted), the answer and its citations. Oldest first.
    Export {
        /// First UTC day (YYYY-MM-DD); default: the first feedback.
        #[arg(long)]
        from: Option<chrono::NaiveDate>,
        /// Last UTC day, included; default: the latest.
        #[arg(long)]
        to: Option<chrono::NaiveDate>,
        /// JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `cabildo feedback …`.
pub async fn feedback(settings: &Settings, command: FeedbackCommand) -> Result<()> {
    let registry = registry(settings).await?;
    match command {
        FeedbackCommand::Export { from, to, json } => {
            if let (Some(f), Some(t)) = (from, to) {
                if t < f {
                    bail!("--to {t} is before --from {f}");
                }
            }
            let all = registry.feedback_between(from, to).await?;
            let mut out = std::io::stdout().lock();
            for f in &all {
                if json {
                    serde_json::to_writer(&mut out, f)?;
                    out.write_all(b"\n")?;
                    continue;
                }
                let cited: Vec<&str> = f
                    .answer
                    .citations
                    .as_array()
                    .map(|c| c.iter().filter_map(|c| c["label"].as_str()).collect())
                    .unwrap_or_default();
                writeln!(
                    out,
                    "{}  {}  answer {}",
                    f.at,
                    f.rating.as_str(),
                    f.answer.id
                )?;
                writeln!(out, "  question: {}", f.answer.question)?;
                writeln!(
                    out,
                    "  answer:   {}",
                    f.answer.answer.replace('\n', "\n            ")
                )?;
                writeln!(out, "  cited:    {}", cited.join("; "))?;
                if let Some(c) = &f.comment {
                    writeln!(out, "  comment:  {c}")?;
                }
                writeln!(out)?;
            }
            if !json {
                let useful = all
                    .iter()
                    .filter(|f| f.rating == cabildo_store::Rating::Useful)
                    .count();
                writeln!(
                    out,
                    "{} ratings: {} useful, {} not useful",
                    all.len(),
                    useful,
                    all.len() - useful
                )?;
            }
            Ok(())
        }
    }
}

/// The registry the settings name, which must already exist: these commands read and manage
/// what `cabildo ingest` or `cabildo serve` created.
async fn registry(settings: &Settings) -> Result<Registry> {
    if let Some(url) = &settings.data.registry {
        return Registry::connect(url)
            .await
            .with_context(|| format!("connecting to the registry {}", redact_url(url)));
    }
    let data = &settings.data.dir;
    let path = Engine::registry_path(data);
    if !path.exists() {
        bail!(
            "{} has no registry: run `cabildo ingest` or `cabildo serve` with --data {} first",
            data.display(),
            data.display()
        );
    }
    Registry::open(&path)
        .await
        .with_context(|| format!("opening {}", path.display()))
}

/// Runs `cabildo clients …`.
pub async fn clients(settings: &Settings, command: ClientsCommand) -> Result<()> {
    // Clients are added before the first start: the registry is created if need be.
    let registry = open_registry(settings).await?;
    match command {
        ClientsCommand::Add {
            name,
            role,
            tenant,
            clearance,
            daily_quota,
        } => {
            if role == AccessRole::Anonymous || role == AccessRole::Citizen {
                bail!("API keys are for partner, caseworker or admin clients, not {role}");
            }
            // The same consistency rules a token's claims must meet.
            cabildo_core::Principal::new(name.clone(), role, tenant.clone(), clearance)?;
            let key = new_api_key()?;
            let client = registry
                .add_client(&NewClient {
                    name: &name,
                    key_hash: &key_hash(&key),
                    role,
                    tenant: tenant.as_deref(),
                    clearance,
                    daily_quota,
                })
                .await
                .with_context(|| format!("adding client {name:?} (is the name taken?)"))?;
            eprintln!(
                "client {} (id {}) added as {}; its key, shown only now:",
                client.name, client.id, client.role
            );
            println!("{key}");
        }
        ClientsCommand::List { json } => {
            let clients = registry.clients().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&clients)?);
            } else {
                for c in clients {
                    println!(
                        "{:<24} {:<10} tenant={:<12} clearance={:<10} quota={:<8} {}",
                        c.name,
                        c.role,
                        c.tenant.as_deref().unwrap_or("-"),
                        c.clearance,
                        c.daily_quota.map_or("default".into(), |q| q.to_string()),
                        c.revoked_at
                            .map_or("live".into(), |at| format!("revoked {at}")),
                    );
                }
            }
        }
        ClientsCommand::Revoke { name } => {
            if !registry.revoke_client(&name).await? {
                bail!("no live client named {name:?}");
            }
            eprintln!("revoked {name}");
        }
    }
    Ok(())
}

/// Runs `cabildo audit …`; `Ok(false)` when verification found breaks.
pub async fn audit(settings: &Settings, command: AuditCommand) -> Result<bool> {
    let registry = registry(settings).await?;
    match command {
        AuditCommand::Verify { json } => {
            let started = std::time::Instant::now();
            let v = registry.verify_audit().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if v.intact() {
                println!(
                    "audit log intact: {} records, head {} ({:.1} s)",
                    v.records,
                    v.head,
                    started.elapsed().as_secs_f64()
                );
            } else {
                println!("audit log BROKEN ({} records read):", v.records);
                for p in &v.problems {
                    println!("  {p}");
                }
            }
            Ok(v.intact())
        }
        AuditCommand::Export { from, to } => {
            let to = to.unwrap_or(from);
            let mut out = std::io::stdout().lock();
            for e in registry.audit_between(from, to).await? {
                serde_json::to_writer(&mut out, &e)?;
                out.write_all(b"\n")?;
            }
            Ok(true)
        }
    }
}

/// Log output with personal data redacted: every formatted line passes through
/// [`cabildo_text::redact_pii`] before it reaches the inner writer (stderr), whatever logged
/// it.
pub struct Redacted<M>(pub M);

impl<'a, M: tracing_subscriber::fmt::MakeWriter<'a>> tracing_subscriber::fmt::MakeWriter<'a>
    for Redacted<M>
{
    type Writer = RedactingLine<M::Writer>;
    fn make_writer(&'a self) -> Self::Writer {
        RedactingLine {
            line: Vec::with_capacity(256),
            out: self.0.make_writer(),
        }
    }
}

/// One log event, buffered, then redacted and written when dropped.
pub struct RedactingLine<W: Write> {
    line: Vec<u8>,
    out: W,
}

impl<W: Write> Write for RedactingLine<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for RedactingLine<W> {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.line);
        let _ = self
            .out
            .write_all(cabildo_text::redact_pii(&text).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn log_lines_lose_national_ids_emails_and_phones() {
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(Redacted(move || sink.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(
                input = "RUT 12.345.678-5, CPF 529.982.247-25, ana@correo.cl, +56 9 8765 4321",
                "bad request body"
            );
        });
        let logged = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
        assert!(logged.contains("bad request body"), "{logged}");
        assert!(
            logged.contains("RUT [RUT], CPF [CPF], [EMAIL], [PHONE]"),
            "{logged}"
        );
        for raw in [
            "12.345.678-5",
            "529.982.247-25",
            "ana@correo.cl",
            "8765 4321",
        ] {
            assert!(!logged.contains(raw), "{raw} in {logged}");
        }
    }
}
