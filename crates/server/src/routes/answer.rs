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
use cabildo_engine::answer::{compose, Answer, AskOptions, Question, Register, Sources, Writer};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{check_question, engine_problem};
use crate::api::{
    AskRequest, ChatChoice, ChatCompletion, ChatCompletionRequest, ChatMessageOut, ChatUsage,
};
use crate::audit::{Outcome, Visit};
use crate::guard::{audit, visible};
use crate::problem::{ApiJson, ProblemBody};
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
    let filters = request
        .filters
        .unwrap_or_default()
        .within(&principal)
        .map_err(|e| Problem::new(Kind::BadRequest, lang, e))?;
    let question = Question {
        text: request.question,
        filters,
        language: request.language,
        register: request.register.unwrap_or_default(),
    };
    let options = state.config.ask.clone();
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
        let answer = collect(&mut pieces, lang).await;
        let outcome = answer
            .as_ref()
            .map_or(Outcome::status(500), Outcome::answer);
        audit(&state, &visit, outcome, lang).await?;
        return Ok(Json(answer?).into_response());
    }
    let (events, stream) = mpsc::channel::<Result<Event, Infallible>>(64);
    tokio::spawn(async move {
        let mut answered = None;
        while let Some(piece) = next_piece(&mut pieces, &events).await {
            let sent = match piece {
                Piece::Text(text) => {
                    events
                        .send(Ok(event("token", &json!({ "text": text }))))
                        .await
                }
                Piece::Done(result) => match *result {
                    Ok(a) => {
                        let citations = json!({
                            "answer": a.answer, "citations": a.citations,
                            "abstained": a.abstained, "checks": a.checks,
                        });
                        let done = json!({
                            "model": a.model, "language": a.language,
                            "finish": a.finish, "timings": a.timings,
                        });
                        answered = Some(a);
                        let _ = events.send(Ok(event("citations", &citations))).await;
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
        audit_stream(&state, &visit, answered.as_ref(), &events, lang).await;
    });
    Ok(Sse::new(ReceiverStream::new(stream))
        .keep_alive(keep_alive())
        .into_response())
}

/// OpenAI-compatible chat completions: the last user message is the question; the reply is
/// the checked answer, with its `citations` beside the usual fields (and in the final chunk
/// of a stream), so OpenAI SDKs and chat UIs work unchanged.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "answers",
    request_body = ChatCompletionRequest,
    responses(
        (status = 200, description = "A completion (JSON), or `chat.completion.chunk` events ending in `[DONE]`",
            content((ChatCompletion = "application/json"), (String = "text/event-stream"))),
        (status = 400, description = "Bad JSON or no user message", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "Generation queue full; see Retry-After", body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn chat(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    Lang(lang): Lang,
    ApiJson(request): ApiJson<ChatCompletionRequest>,
) -> Result<Response, Problem> {
    let started = Instant::now();
    let text = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .and_then(|m| m.content.as_ref())
        .map(|c| c.text())
        .unwrap_or_default();
    check_question(lang, &text, "the last user message")?;
    let mut options = state.config.ask.clone();
    if let Some(max) = request.max_completion_tokens.or(request.max_tokens) {
        options.max_tokens = max.clamp(1, options.max_tokens);
    }
    if let Some(t) = request.temperature {
        options.temperature = t.clamp(0.0, 2.0);
    }
    let question = Question {
        text,
        filters: principal.filters(),
        language: None,
        register: Register::default(),
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
    let model = format!("cabildo/{}", state.writer.name());
    if !request.stream.unwrap_or(false) {
        let a = collect(&mut pieces, lang).await;
        let outcome = a.as_ref().map_or(Outcome::status(500), Outcome::answer);
        audit(&state, &visit, outcome, lang).await?;
        let a = a?;
        let usage = ChatUsage {
            prompt_tokens: a.timings.prompt_tokens,
            completion_tokens: a.timings.completion_tokens,
            total_tokens: a.timings.prompt_tokens + a.timings.completion_tokens,
        };
        return Ok(Json(ChatCompletion {
            id,
            object: "chat.completion",
            created,
            model,
            choices: vec![ChatChoice {
                index: 0,
                message: ChatMessageOut {
                    role: "assistant",
                    content: a.answer,
                },
                finish_reason: finish_reason(a.finish),
            }],
            usage,
            citations: a.citations,
            abstained: a.abstained,
        })
        .into_response());
    }
    let (events, stream) = mpsc::channel::<Result<Event, Infallible>>(64);
    tokio::spawn(async move {
        let chunk = |delta: serde_json::Value, finish: Option<&str>| {
            json!({
                "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            })
        };
        let mut answered = None;
        let first = chunk(json!({"role": "assistant", "content": ""}), None);
        if events.send(Ok(data(&first))).await.is_err() {
            audit_stream(&state, &visit, None, &events, lang).await;
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
                    match *result {
                        Ok(a) => {
                            last["choices"][0]["finish_reason"] = json!(finish_reason(a.finish));
                            last["citations"] = json!(a.citations);
                            last["abstained"] = json!(a.abstained);
                            last["usage"] = json!({
                                "prompt_tokens": a.timings.prompt_tokens,
                                "completion_tokens": a.timings.completion_tokens,
                                "total_tokens": a.timings.prompt_tokens + a.timings.completion_tokens,
                            });
                            answered = Some(a);
                        }
                        Err(e) => {
                            let p = Problem::internal(lang, &e);
                            last["error"] = json!({"message": p.detail});
                        }
                    }
                    let _ = events.send(Ok(data(&last))).await;
                    events.send(Ok(Event::default().data("[DONE]"))).await
                }
            };
            if sent.is_err() {
                break;
            }
        }
        audit_stream(&state, &visit, answered.as_ref(), &events, lang).await;
    });
    Ok(Sse::new(ReceiverStream::new(stream))
        .keep_alive(keep_alive())
        .into_response())
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

/// Audits a stream when it ends: its answer; without one, 499 if the client left first,
/// 500 if the answer failed. The text has left by then, so a record that cannot be written
/// is only logged (by `audit`).
async fn audit_stream(
    state: &AppState,
    visit: &Visit,
    answered: Option<&Answer>,
    events: &mpsc::Sender<Result<Event, Infallible>>,
    lang: Language,
) {
    let outcome = match answered {
        Some(a) => Outcome::answer(a),
        None if events.is_closed() => Outcome::status(CLIENT_GONE),
        None => Outcome::status(500),
    };
    let _ = audit(state, visit, outcome, lang).await;
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
    std::thread::spawn(move || {
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
