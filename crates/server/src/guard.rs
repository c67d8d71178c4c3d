//! The door of every `/v1` route: rate limits per client IP and per principal, then
//! authentication, then a partner's daily quota; the principal is handed to the handler as
//! a request extension. And the second check on the way out: no passage leaves unless its
//! principal may read it, whatever retrieval returned.

use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cabildo_core::{AccessRole, Passage, Principal, SearchHit};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::audit::{Outcome, Visit};
use crate::auth::AuthError;
use crate::{AppState, Kind, Lang, Problem};

/// Request rates and quotas.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Requests per minute from one client IP (all callers behind it together); 0: no limit.
    pub per_ip_per_minute: u32,
    /// Requests per minute by one authenticated principal; 0: no limit.
    pub per_principal_per_minute: u32,
    /// Requests per UTC day for a partner whose API key sets no quota of its own; `None`:
    /// unlimited.
    pub partner_daily_quota: Option<u64>,
}

impl Default for Limits {
    /// The defaults of `[limits]`.
    fn default() -> Self {
        Limits::from_settings(&cabildo_core::settings::LimitSettings::default())
    }
}

impl Limits {
    /// From `[limits]` (a quota of 0 is none).
    pub fn from_settings(s: &cabildo_core::settings::LimitSettings) -> Limits {
        Limits {
            per_ip_per_minute: s.per_ip_per_minute,
            per_principal_per_minute: s.per_caller_per_minute,
            partner_daily_quota: (s.partner_daily_quota > 0).then_some(s.partner_daily_quota),
        }
    }
}

/// The in-memory token buckets (none where the limit is 0).
pub struct RateLimits {
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_principal: Option<DefaultKeyedRateLimiter<String>>,
}

impl RateLimits {
    /// Buckets for these limits.
    pub fn new(limits: &Limits) -> Self {
        RateLimits {
            per_ip: bucket(limits.per_ip_per_minute),
            per_principal: bucket(limits.per_principal_per_minute),
        }
    }

    /// Forgets callers whose buckets are full again, so a spray of addresses or tokens
    /// cannot grow memory without bound. Called every minute by the server.
    pub fn forget_idle(&self) {
        for limiter in self.per_ip.iter() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        for limiter in self.per_principal.iter() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

fn bucket<K: Hash + Eq + Clone>(per_minute: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n)))
}

/// How long `key` must wait before its next request, if it must.
fn wait<K: Hash + Eq + Clone>(
    limiter: &Option<DefaultKeyedRateLimiter<K>>,
    key: &K,
) -> Option<Duration> {
    let not_until = limiter.as_ref()?.check_key(key).err()?;
    Some(not_until.wait_time_from(DefaultClock::default().now()))
}

/// Middleware for the `/v1` routes.
pub async fn guard(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Lang(lang) = Lang::of(request.headers());
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(wait) = ip.and_then(|ip| wait(&state.rate_limits.per_ip, &ip)) {
        return too_many(lang, wait, "too many requests from this address").into_response();
    }
    let (principal, client) = match state.auth.authenticate(request.headers()).await {
        Ok(found) => found,
        Err(e @ AuthError::Unavailable(_)) => return Problem::internal(lang, &e).into_response(),
        Err(e) => {
            tracing::info!(reason = %e, "authentication refused");
            let mut p = Problem::new(Kind::Unauthorized, lang, e.to_string());
            // RFC 6750: no error code when no credentials were sent.
            p.www_authenticate = Some(match e {
                AuthError::Missing => "Bearer",
                _ => "Bearer error=\"invalid_token\"",
            });
            return p.into_response();
        }
    };
    if principal.role != AccessRole::Anonymous {
        // Anonymous callers share one principal: the per-IP bucket is theirs.
        if let Some(wait) = wait(&state.rate_limits.per_principal, &principal.subject) {
            return too_many(lang, wait, "too many requests for this caller").into_response();
        }
    }
    if principal.role == AccessRole::Partner {
        let quota = client
            .as_ref()
            .and_then(|c| c.daily_quota)
            .or(state.config.limits.partner_daily_quota);
        if let Err(p) = within_daily_quota(&state, &principal, quota, lang).await {
            return p.into_response();
        }
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// Counts this request against the partner's daily quota (in the registry, so restarts and
/// replicas share it); 429 until midnight UTC once it is used up.
async fn within_daily_quota(
    state: &AppState,
    principal: &Principal,
    quota: Option<u64>,
    lang: cabildo_core::Language,
) -> Result<(), Problem> {
    let Some(quota) = quota else { return Ok(()) };
    let now = chrono::Utc::now();
    let used = state
        .engine
        .registry()
        .count_request(&state.auditor.pseudonym(principal), now.date_naive())
        .await
        .map_err(|e| Problem::internal(lang, &e))?;
    if used <= quota {
        return Ok(());
    }
    let until_midnight = now
        .date_naive()
        .succ_opt()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|m| (m - now.naive_utc()).num_seconds().max(1) as u64)
        .unwrap_or(86_400);
    let mut p = Problem::new(
        Kind::TooManyRequests,
        lang,
        format!("the daily quota of {quota} requests is used up"),
    );
    p.retry_after = Some(until_midnight);
    Err(p)
}

fn too_many(lang: cabildo_core::Language, wait: Duration, why: &str) -> Problem {
    let mut p = Problem::new(Kind::TooManyRequests, lang, why);
    p.retry_after = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
    p
}

/// Admin-only routes: ingest, delete, jobs, audit export.
pub fn require_admin(principal: &Principal, lang: cabildo_core::Language) -> Result<(), Problem> {
    if principal.is_admin() {
        Ok(())
    } else if principal.role == AccessRole::Anonymous {
        let mut p = Problem::new(
            Kind::Unauthorized,
            lang,
            "this endpoint needs an admin's credentials",
        );
        p.www_authenticate = Some("Bearer");
        Err(p)
    } else {
        Err(Problem::new(
            Kind::Forbidden,
            lang,
            "this endpoint is for admins",
        ))
    }
}

/// The second check: drops any passage `principal` may not read. Retrieval already filters
/// by access and tenant inside every index; a passage caught here means that filter failed,
/// so it is logged as an error and counted.
pub fn visible(state: &AppState, principal: &Principal, hits: Vec<SearchHit>) -> Vec<SearchHit> {
    readable(state, principal, hits, |h| &h.passage)
}

/// The second check for passages read outside retrieval (a norm's page): as [`visible`].
pub fn visible_passages(
    state: &AppState,
    principal: &Principal,
    passages: Vec<Passage>,
) -> Vec<Passage> {
    readable(state, principal, passages, |p| p)
}

/// Keeps what `principal` may read, counting and logging what it withheld (which should
/// never happen: the first check is inside every query).
fn readable<T>(
    state: &AppState,
    principal: &Principal,
    items: Vec<T>,
    passage: impl Fn(&T) -> &Passage,
) -> Vec<T> {
    let before = items.len();
    let kept: Vec<T> = items
        .into_iter()
        .filter(|item| {
            let p = passage(item);
            principal.may_read(p.access, p.tenant.as_deref())
        })
        .collect();
    let withheld = before - kept.len();
    if withheld > 0 {
        state.metrics.withheld.inc_by(withheld as u64);
        tracing::error!(
            withheld,
            "passages the caller may not read reached the response; withheld"
        );
    }
    kept
}

/// Audits a read that asks no question: who read which route, and the ids of the passages
/// (or norms, jobs) whose content it returned.
pub async fn audit_read(
    state: &AppState,
    principal: Principal,
    route: &'static str,
    started: std::time::Instant,
    returned: Vec<String>,
    lang: cabildo_core::Language,
) -> Result<(), Problem> {
    let visit = Visit {
        principal,
        route,
        started,
        question: None,
        filters: None,
    };
    let outcome = Outcome {
        status: 200,
        passages: returned,
        ..Outcome::default()
    };
    audit(state, &visit, outcome, lang).await
}

/// Appends an audit record. A response whose record cannot be written is not sent (500):
/// every answer must be traceable. (A stream's record is written when it ends; its text has
/// left by then, so there the failure is only logged.)
pub async fn audit(
    state: &AppState,
    visit: &Visit,
    outcome: Outcome<'_>,
    lang: cabildo_core::Language,
) -> Result<(), Problem> {
    state
        .auditor
        .record(visit, outcome)
        .await
        .map_err(|e| Problem::internal(lang, &format!("audit record not written: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_callers_are_forgotten_and_busy_ones_kept() {
        let limits = RateLimits::new(&Limits {
            per_ip_per_minute: 600, // a token every 100 ms
            per_principal_per_minute: 0,
            partner_daily_quota: None,
        });
        let per_ip = limits.per_ip.as_ref().expect("a per-IP bucket");
        assert!(limits.per_principal.is_none(), "0 switches a bucket off");
        for last in 1..=50u8 {
            assert!(wait(&limits.per_ip, &IpAddr::from([10, 0, 0, last])).is_none());
        }
        assert_eq!(per_ip.len(), 50);
        std::thread::sleep(Duration::from_millis(250));
        // One caller is still busy: its bucket is seconds from full again.
        for _ in 0..50 {
            let _ = wait(&limits.per_ip, &IpAddr::from([10, 0, 0, 1]));
        }
        limits.forget_idle();
        assert_eq!(per_ip.len(), 1, "only the busy caller is remembered");
    }
}
