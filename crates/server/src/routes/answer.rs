//! `POST /v1/ask` and `POST /v1/chat/completions`: retrieve, then write and check the answer
//! on a thread of its own, delivering checked text as it passes. A client that goes away
//! drops the receiving end, which cancels generation at the next token.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cabildo_core::{FinishReason, Language, ModelError, Principal};
use cabildo_engine::answer::{
    compose, conversation, Answer, AskOptions, Question, Sources, Turn, Writer,
};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{check_question, engine_problem, filters_for, method_of};
use crate::api::{
    AskRequest, ChatChoice, ChatCompletion, ChatCompletionRequest, ChatMessageIn, ChatMessageOut,
    ChatUsage,
};
use crate::audit::{Outcome, Visit};
use crate::guard::{audit, visible};
use crate::problem::{ApiJson, OpenAiErrorBody, ProblemBody};
use crate::{AppState, Kind, Lang, Problem};

/// What the writing thread sends.
enum Piece {
    /// Checked text.
    Text(String),
    /// The end.
    Done(Box<Result<Answer, ModelError>>),
}

/// A cited answer to a question. JSON by default; with `Accept: text/event-stream` (or
/// `stream: true`) server-sent events: `token` events with checked text as it is written,
/// then `citations` (the final answer and its sources), then `done` (model, timings).
#[utoipa::path(post, path = "/v1/ask", tag = "answers",
    request_body = AskRequest,
    responses(
        (status = 200, description = "The checked answer (JSON), or its event stream: `token`, `citations`, `done`",
            content((Answer = "application/json"), (String = "text/event-stream"))),
        (status = 400, description = "Bad JSON, unknown field or filter", body = ProblemBody, content_type = "application/problem+json"),
        (status = 413, description = "Body over the limit", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "Generation queue full; see Retry-After", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn ask(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<AskRequest>,
) -> Result<Response, Problem> {
    let started = Instant::now();
    let Lang(lang) = Lang::of(&headers);
    check_question(lang, &request.question, "question")?;
    check_history(lang, &request.history)?;
    let filters = filters_for(request.filters, &principal, lang)?;
    let question = Question {
        text: request.question,
        filters,
        language: request.language,
        register: request.register.unwrap_or_default(),
        history: request.history,
    };
    let options = state.config.ask.clone();
    let id = format!("ans_{}", uuid::Uuid::new_v4().simple());
    let sources = gather(&state, &principal, &question, &options, lang).await?;
    let mut pieces = start(&state, sources, options, lang).await?;
    let visit = Visit {
        principal,
        route: "/v1/ask",
        started,
        question: Some(question.text),
        filters: Some(question.filters),
    };
    if !wants_stream(&headers, request.stream) {
        let answer = collect(&mut pieces, lang).await.map(|mut a| {
            a.id = id;
            a
        });
        let outcome = answer
            .as_ref()
            .map_or(Outcome::status(500), Outcome::answer);
        audit(&state, &visit, outcome, lang).await?;
        return Ok(Json(answer?).into_response());
    }
    let (events, stream) = mpsc::channel::<Result<Event, Infallible>>(64);
    tokio::spawn(async move {
        let mut audited = false;
        while let Some(piece) = next_piece(&mut pieces, &events).await {
            let sent = match piece {
                Piece::Text(text) => {
                    events
                        .send(Ok(event("token", &json!({ "text": text }))))
                        .await
                }
                Piece::Done(result) => match *result {
                    Ok(mut a) => {
                        a.id = id.clone();
                        let citations = json!({
                            "id": a.id, "answer": a.answer, "citations": a.citations,
                            "abstained": a.abstained, "checks": a.checks,
                        });
                        let done = json!({
                            "id": a.id, "model": a.model, "language": a.language,
                            "finish": a.finish, "timings": a.timings,
                        });
                        let _ = events.send(Ok(event("citations", &citations))).await;
                        // Kept and audited before `done`: feedback sent on `done` finds it.
                        audited = true;
                        let _ = audit(&state, &visit, Outcome::answer(&a), lang).await;
                        events.send(Ok(event("done", &done))).await
                    }
                    Err(e) => {
                        let p = Problem::internal(lang, &e);
                        events
                            .send(Ok(event("error", &json!({"detail": p.detail}))))
                            .await
                    }
                },
            };
            if sent.is_err() {
                break; // the client left: dropping `pieces` stops the writer
            }
        }
        if !audited {
            audit_unfinished(&state, &visit, &events, lang).await;
        }
    });
    Ok(Sse::new(ReceiverStream::new(stream))
        .keep_alive(keep_alive())
        .into_response())
}

/// OpenAI-compatible chat completions: the last user message is the question and the
/// messages before it the conversation; the reply is the checked answer, its sources listed
/// as numbered links at the end of the content and as `citations` beside the usual fields
/// (in the final chunk of a stream), so OpenAI SDKs and chat UIs work unchanged. Errors
/// have OpenAI's shape, `{"error": {"message", "type", "code"}}`.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "answers",
    request_body = ChatCompletionRequest,
    responses(
        (status = 200, description = "A completion (JSON), or `chat.completion.chunk` events ending in `[DONE]`",
            content((ChatCompletion = "application/json"), (String = "text/event-stream"))),
        (status = 400, description = "Bad JSON or no user message", body = OpenAiErrorBody),
        (status = 401, description = "No or bad credentials", body = OpenAiErrorBody),
        (status = 429, description = "A rate limit or the daily quota; see Retry-After", body = OpenAiErrorBody),
        (status = 503, description = "Generation queue full; see Retry-After", body = OpenAiErrorBody),
    ))]
pub async fn chat(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Lang(lang): Lang,
    ApiJson(request): ApiJson<ChatCompletionRequest>,
) -> Result<Response, Problem> {
    let started = Instant::now();
    let (text, history) = conversation_of(&request.messages);
    check_question(lang, &text, "the last user message")?;
    check_history(lang, &history)?;
    let mut options = state.config.ask.clone();
    if let Some(max) = request.max_completion_tokens.or(request.max_tokens) {
        options.max_tokens = max.clamp(1, options.max_tokens);
    }
    if let Some(t) = request.temperature {
        options.temperature = t.clamp(0.0, 2.0);
    }
    if let Some(p) = request.top_p {
        if !(p > 0.0 && p <= 1.0) {
            return Err(Problem::new(
                Kind::BadRequest,
                lang,
                "top_p must be in (0, 1]",
            ));
        }
        options.top_p = Some(p);
    }
    if let Some(seed) = request.seed {
        options.seed = seed;
    }
    if let Some(stop) = request.stop {
        options.stop = stop.into_vec();
        if options.stop.len() > 4 {
            return Err(Problem::new(
                Kind::BadRequest,
                lang,
                "stop takes at most 4 strings",
            ));
        }
    }
    let extra = request.cabildo.unwrap_or_default();
    if let Some(m) = method_of(extra.method.as_deref(), lang)? {
        options.method = Some(m);
    }
    let filters = filters_for(extra.filters, &principal, lang)?;
    let question = Question {
        text,
        filters,
        language: extra.language,
        register: extra.register.unwrap_or_default(),
        history,
    };
    let sources = gather(&state, &principal, &question, &options, lang).await?;
    let mut pieces = start(&state, sources, options, lang).await?;
    let visit = Visit {
        principal,
        route: "/v1/chat/completions",
        started,
        question: Some(question.text),
        filters: Some(question.filters),
    };
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = chrono::Utc::now().timestamp();
    let model = model_id(&state);
    if !request.stream.unwrap_or(false) {
        let a = collect(&mut pieces, lang).await.map(|mut a| {
            a.id = id.clone();
            a
        });
        let outcome = a.as_ref().map_or(Outcome::status(500), Outcome::answer);
        audit(&state, &visit, outcome, lang).await?;
        let a = a?;
        return Ok(Json(ChatCompletion {
            id,
            object: "chat.completion",
            created,
            model,
            choices: vec![ChatChoice {
                index: 0,
                message: ChatMessageOut {
                    role: "assistant",
                    content: format!("{}{}", a.answer, source_links(&a)),
                },
                finish_reason: finish_reason(a.finish),
            }],
            usage: usage(&a),
            citations: a.citations,
            abstained: a.abstained,
        })
        .into_response());
    }
    let include_usage = request.stream_options.is_some_and(|o| o.include_usage);
    let (events, stream) = mpsc::channel::<Result<Event, Infallible>>(64);
    tokio::spawn(async move {
        let chunk = |delta: serde_json::Value, finish: Option<&str>| {
            json!({
                "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            })
        };
        let mut audited = false;
        let first = chunk(json!({"role": "assistant", "content": ""}), None);
        if events.send(Ok(data(&first))).await.is_err() {
            audit_unfinished(&state, &visit, &events, lang).await;
            return;
        }
        while let Some(piece) = next_piece(&mut pieces, &events).await {
            let sent = match piece {
                Piece::Text(text) => {
                    events
                        .send(Ok(data(&chunk(json!({ "content": text }), None))))
                        .await
                }
                Piece::Done(result) => {
                    let mut last = chunk(json!({}), Some("stop"));
                    let mut counts = None;
                    let mut answered = None;
                    match *result {
                        Ok(mut a) => {
                            a.id = id.clone();
                            let links = source_links(&a);
                            if !links.is_empty() {
                                let delta = chunk(json!({ "content": links }), None);
                                let _ = events.send(Ok(data(&delta))).await;
                            }
                            last["choices"][0]["finish_reason"] = json!(finish_reason(a.finish));
                            last["citations"] = json!(a.citations);
                            last["abstained"] = json!(a.abstained);
                            counts = Some(usage(&a));
                            answered = Some(a);
                        }
                        Err(e) => {
                            let p = Problem::internal(lang, &e);
                            last["error"] = json!({"message": p.detail, "type": "server_error"});
                        }
                    }
                    let _ = events.send(Ok(data(&last))).await;
                    if let Some(counts) = counts.filter(|_| include_usage) {
                        let mut tail = chunk(json!({}), None);
                        tail["choices"] = json!([]);
                        tail["usage"] = json!(counts);
                        let _ = events.send(Ok(data(&tail))).await;
                    }
                    // Kept and audited before `[DONE]`: feedback sent after it finds it.
                    if let Some(a) = answered {
                        audited = true;
                        let _ = audit(&state, &visit, Outcome::answer(&a), lang).await;
                    }
                    events.send(Ok(Event::default().data("[DONE]"))).await
                }
            };
            if sent.is_err() {
                break;
            }
        }
        if !audited {
            audit_unfinished(&state, &visit, &events, lang).await;
        }
    });
    Ok(Sse::new(ReceiverStream::new(stream))
        .keep_alive(keep_alive())
        .into_response())
}

/// The name the OpenAI-shaped routes give the answering model.
pub fn model_id(state: &AppState) -> String {
    format!("cabildo-{}", state.writer.name())
}

/// The question (the last user message) and the turns before it. System and tool messages
/// are not part of the conversation: Cabildo's own instructions govern.
fn conversation_of(messages: &[ChatMessageIn]) -> (String, Vec<Turn>) {
    let last_user = messages.iter().rposition(|m| m.role == "user");
    let Some(last) = last_user else {
        return (String::new(), Vec::new());
    };
    let text = messages[last]
        .content
        .as_ref()
        .map(|c| c.text())
        .unwrap_or_default();
    let history = messages[..last]
        .iter()
        .filter_map(|m| {
            let content = m.content.as_ref()?.text();
            match m.role.as_str() {
                "user" => Some(Turn::user(content)),
                "assistant" => Some(Turn::assistant(content)),
                _ => None,
            }
        })
        .collect();
    (text, history)
}

/// Rejects an earlier turn too long to be one, among those read (the newest
/// [`conversation::MAX_TURNS`]; older turns are dropped unread).
fn check_history(lang: Language, history: &[Turn]) -> Result<(), Problem> {
    const MAX_TURN_CHARS: usize = 8_000;
    let read = conversation::bounded(history);
    let skipped = history.len() - read.len();
    match read
        .iter()
        .position(|t| t.content.chars().count() > MAX_TURN_CHARS)
    {
        Some(i) => Err(Problem::new(
            Kind::BadRequest,
            lang,
            format!(
                "turn {} of the history is longer than {MAX_TURN_CHARS} characters",
                skipped + i + 1
            ),
        )),
        None => Ok(()),
    }
}

fn usage(a: &Answer) -> ChatUsage {
    ChatUsage {
        prompt_tokens: a.timings.prompt_tokens,
        completion_tokens: a.timings.completion_tokens,
        total_tokens: a.timings.prompt_tokens + a.timings.completion_tokens,
    }
}

/// The cited sources as numbered links after the answer, for chat clients that show only
/// the content: "Fuentes:" and one line a source, `[n] label (p. N) — URL`. Nothing for an
/// abstention, whose text already names the closest provisions.
fn source_links(a: &Answer) -> String {
    if a.abstained || a.citations.is_empty() {
        return String::new();
    }
    let heading = match a.language {
        Language::Es => "Fuentes",
        Language::Pt => "Fontes",
        Language::En => "Sources",
    };
    let mut out = format!("\n\n{heading}:");
    for c in &a.citations {
        out.push_str(&format!("\n[{}] {}", c.n, c.label));
        if let Some(page) = c.page {
            out.push_str(&format!(", p. {page}"));
        }
        if let Some(url) = &c.url {
            out.push_str(&format!(" — {url}"));
        }
    }
    out
}

/// Comments every second keep proxies from timing out during prefill, and make a closed
/// connection show up as a failed write within a second.
fn keep_alive() -> KeepAlive {
    KeepAlive::new().interval(std::time::Duration::from_secs(1))
}

/// The next piece of the answer, or `None` when it is complete or the client has gone (the
/// event stream was dropped): returning drops `pieces`, which stops the writer.
async fn next_piece(
    pieces: &mut mpsc::Receiver<Piece>,
    events: &mpsc::Sender<Result<Event, Infallible>>,
) -> Option<Piece> {
    tokio::select! {
        piece = pieces.recv() => piece,
        _ = events.closed() => None,
    }
}

fn finish_reason(finish: Option<FinishReason>) -> &'static str {
    match finish {
        Some(FinishReason::Length) => "length",
        _ => "stop",
    }
}

fn wants_stream(headers: &HeaderMap, asked: Option<bool>) -> bool {
    asked.unwrap_or_else(|| {
        headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/event-stream"))
    })
}

fn event(name: &str, value: &serde_json::Value) -> Event {
    Event::default().event(name).data(value.to_string())
}

fn data(value: &serde_json::Value) -> Event {
    Event::default().data(value.to_string())
}

/// Retrieval for an answer, then the second access check on every source: nothing the
/// principal may not read reaches the writer, so no citation, quote or streamed token can
/// carry it.
async fn gather(
    state: &AppState,
    principal: &Principal,
    question: &Question,
    options: &AskOptions,
    lang: Language,
) -> Result<Sources, Problem> {
    let mut sources = state
        .engine
        .gather(question, options)
        .await
        .map_err(|e| engine_problem(lang, e))?;
    state.metrics.retrieval.observe(sources.retrieval_seconds);
    let kept = visible(state, principal, sources.hits.clone());
    sources.keep_hits(kept);
    Ok(sources)
}

/// The audit status of a stream whose client left before the answer was complete (nginx's
/// "client closed request").
const CLIENT_GONE: u16 = 499;

/// Audits a stream that ended without an answer: 499 if the client left first, 500 if the
/// answer failed. (A stream's answer is audited just before its last event; its text has
/// left by then, so a record that cannot be written is only logged, by `audit`.)
async fn audit_unfinished(
    state: &AppState,
    visit: &Visit,
    events: &mpsc::Sender<Result<Event, Infallible>>,
    lang: Language,
) {
    let status = if events.is_closed() { CLIENT_GONE } else { 500 };
    let _ = audit(state, visit, Outcome::status(status), lang).await;
}

/// Starts writing the answer on its own thread. Answers that need the model wait for a
/// generation slot first (refused with 503 when the queue is full); abstentions and
/// extractive answers do not.
async fn start(
    state: &Arc<AppState>,
    sources: Sources,
    options: AskOptions,
    lang: Language,
) -> Result<mpsc::Receiver<Piece>, Problem> {
    let running = if sources.relevant && matches!(state.writer, Writer::Model(_)) {
        let Some(ticket) = state.queue.enter() else {
            state.metrics.rejected.inc();
            let mut p = Problem::new(Kind::Busy, lang, "the generation queue is full");
            p.retry_after = Some(state.config.retry_after);
            return Err(p);
        };
        state.metrics.queue_depth.set(state.queue.waiting() as i64);
        let running = ticket.start().await;
        state.metrics.queue_depth.set(state.queue.waiting() as i64);
        Some(running.ok_or_else(|| Problem::internal(lang, &"generation queue closed"))?)
    } else {
        None
    };
    let (tx, rx) = mpsc::channel(64);
    let writer = state.writer.clone();
    let state = state.clone();
    // On the runtime's blocking pool, which is bounded (512 threads), not a thread of its
    // own per request: extractive answers and abstentions do not pass the generation queue.
    tokio::task::spawn_blocking(move || {
        let _slot = running;
        let result = compose(
            &sources,
            &writer,
            &options,
            &mut |text| tx.blocking_send(Piece::Text(text.to_string())).is_ok(),
            &|| !tx.is_closed(),
        );
        if let Ok(a) = &result {
            let m = &state.metrics;
            m.tokens.inc_by(a.timings.completion_tokens as u64);
            if a.finish == Some(FinishReason::Cancelled) {
                m.cancelled.inc();
                tracing::info!(
                    tokens = a.timings.completion_tokens,
                    "client gone: generation stopped"
                );
            }
        }
        let _ = tx.blocking_send(Piece::Done(Box::new(result)));
    });
    Ok(rx)
}

/// Waits for the whole answer.
async fn collect(pieces: &mut mpsc::Receiver<Piece>, lang: Language) -> Result<Answer, Problem> {
    while let Some(piece) = pieces.recv().await {
        if let Piece::Done(result) = piece {
            return (*result).map_err(|e| Problem::internal(lang, &e));
        }
    }
    Err(Problem::internal(
        lang,
        &"the answer writer stopped without an answer",
    ))
}
