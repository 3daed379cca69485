//! `entmin serve`: an OpenAI-compatible HTTP server over the library (docs/server.md).
//!
//! The model runs on a thread of its own ([`Engine::serve_jobs`]: continuous batching),
//! never on the async executor; handlers parse and check a request, send it there as a
//! [`Job`] and turn its events into a response or an SSE stream. A request that cannot
//! be queued gets 429, one that comes while the model loads or the server stops 503;
//! a client that goes away cancels its job, which frees its place in the batch.

mod api;
mod error;
mod metrics;
mod respond;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::mpsc as tmpsc;

pub use api::Defaults;
use api::{check_fields, ChatRequest, CompletionRequest, Parsed, CHAT_FIELDS, COMPLETION_FIELDS};
use error::ApiError;
use metrics::Metrics;
use respond::{completion_tokens, finish_reason, releasable, sse, ChoiceState, Endpoint, Header};

use crate::models::Cancel;
use crate::runtime::{Completion, Job, JobEvent, ServeOptions};
use crate::{Engine, Error, Method, Options, Result};

/// How `entmin serve` runs.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Model spec, as for [`Engine::load`].
    pub model: String,
    /// Device, weight storage and threads.
    pub options: Options,
    /// Most sequences decoded together.
    pub max_batch: usize,
    /// Most requests waiting for a place beyond those running.
    pub queue: usize,
    /// Requests must carry `Authorization: Bearer KEY`.
    pub api_key: Option<String>,
    /// What requests fall back on.
    pub defaults: Defaults,
    /// Larger request bodies get 400.
    pub body_limit: usize,
    /// After a shutdown signal, running requests get this long to finish before they are
    /// cancelled.
    pub shutdown_grace: Duration,
}

/// Shared by the handlers.
struct App {
    config: ServerConfig,
    /// The id `/v1/models` lists and responses carry.
    model_id: String,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    ready: AtomicBool,
    stopping: AtomicBool,
    /// Requests admitted and not yet answered.
    admitted: AtomicUsize,
    next_id: AtomicU64,
    /// Cancel handles of the requests in flight, for a shutdown that cannot wait.
    in_flight: Mutex<HashMap<u64, Vec<Cancel>>>,
    metrics: Metrics,
}

/// Serve on `listener` until `shutdown` resolves, then let running requests finish
/// (up to `shutdown_grace`), cancel what is left and stop the model thread. `on_ready`
/// is called once the model is loaded. Errors when the model cannot be loaded.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(&Engine) + Send + 'static,
) -> Result<()> {
    let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
    let model_id = config.model.clone();
    let app = Arc::new(App {
        model_id,
        jobs: Mutex::new(Some(jobs_tx)),
        ready: AtomicBool::new(false),
        stopping: AtomicBool::new(false),
        admitted: AtomicUsize::new(0),
        next_id: AtomicU64::new(0),
        in_flight: Mutex::new(HashMap::new()),
        metrics: Metrics::default(),
        config,
    });
    let (loaded_tx, loaded_rx) = tokio::sync::oneshot::channel::<Result<()>>();
    let model_app = app.clone();
    let model_thread = std::thread::Builder::new()
        .name("entmin-model".into())
        .spawn(move || {
            // The model works on a pool thread of rayon's (the CPU backend's pool), so each
            // parallel op starts on the thread that asks for it rather than waking a
            // sleeping worker and parking this one, ~200 times per decode step.
            if let Some(n) = model_app.config.options.threads {
                if let Err(e) = crate::runtime::set_threads(n) {
                    let _ = loaded_tx.send(Err(e));
                    return;
                }
            }
            rayon::scope(move |_| {
                let engine = match Engine::load(&model_app.config.model, model_app.config.options.clone()) {
                    Ok(e) => e,
                    Err(e) => {
                        let _ = loaded_tx.send(Err(e));
                        return;
                    }
                };
                on_ready(&engine);
                model_app.ready.store(true, Ordering::SeqCst);
                let _ = loaded_tx.send(Ok(()));
                let options = ServeOptions { max_batch: model_app.config.max_batch };
                engine.serve_jobs(&jobs_rx, options, &mut &model_app.metrics);
            })
        })
        .map_err(|e| Error::invalid(format!("cannot start the model thread: {e}")))?;

    let router = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(models))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(DefaultBodyLimit::max(app.config.body_limit))
        .with_state(app.clone());

    let stop_app = app.clone();
    let (stopped_tx, stopped_rx) = tokio::sync::watch::channel(false);
    let signal = async move {
        shutdown.await;
        stop_app.stopping.store(true, Ordering::SeqCst);
        let _ = stopped_tx.send(true);
        // Running requests get the grace period; then whatever is left is cancelled.
        let grace = stop_app.config.shutdown_grace;
        let late = stop_app.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            for cancels in late.in_flight.lock().expect("in-flight lock").values() {
                cancels.iter().for_each(Cancel::cancel);
            }
        });
    };
    let server = axum::serve(listener, router).with_graceful_shutdown(signal);
    let mut stopped = stopped_rx.clone();
    let load_failed = async move {
        match loaded_rx.await {
            Ok(Err(e)) => Err(e),
            // Loaded: wait for the shutdown; the server future ends the select.
            _ => {
                let _ = stopped.wait_for(|s| *s).await;
                std::future::pending::<Result<()>>().await
            }
        }
    };
    let outcome = tokio::select! {
        r = server => r.map_err(|e| Error::invalid(format!("the server failed: {e}"))),
        r = load_failed => r,
    };
    // No new jobs: the model thread finishes what it holds and returns.
    app.jobs.lock().expect("jobs lock").take();
    let _ = tokio::task::spawn_blocking(move || model_thread.join()).await;
    outcome
}

/// The address a listener is on, for the "listening on" line.
pub fn local_addr(listener: &tokio::net::TcpListener) -> Result<SocketAddr> {
    listener.local_addr().map_err(|e| Error::invalid(format!("listener address: {e}")))
}

impl App {
    fn authorise(&self, headers: &HeaderMap) -> std::result::Result<(), ApiError> {
        let Some(key) = &self.config.api_key else { return Ok(()) };
        let given =
            headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        // Compare without an early exit, so timing does not tell how much matched.
        let ok = given.is_some_and(|g| {
            g.len() == key.len() && g.bytes().zip(key.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
        });
        if ok {
            Ok(())
        } else {
            Err(ApiError::unauthorized())
        }
    }

    fn available(&self) -> std::result::Result<(), ApiError> {
        if self.stopping.load(Ordering::SeqCst) {
            return Err(ApiError::unavailable("the server is shutting down"));
        }
        if !self.ready.load(Ordering::SeqCst) {
            return Err(ApiError::unavailable("the model is loading"));
        }
        Ok(())
    }
}

async fn health(State(app): State<Arc<App>>) -> Response {
    match app.available() {
        Ok(()) => axum::Json(serde_json::json!({"status": "ok"})).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn models(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Err(e) = app.authorise(&headers) {
        return e.into_response();
    }
    axum::Json(serde_json::json!({
        "object": "list",
        "data": [{"id": app.model_id, "object": "model", "created": now_secs(), "owned_by": "entmin"}],
    }))
    .into_response()
}

async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Err(e) = app.authorise(&headers) {
        return e.into_response();
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], app.metrics.render()).into_response()
}

async fn chat(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    generate(app, headers, body, Endpoint::Chat).await
}

async fn completions(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    generate(app, headers, body, Endpoint::Completions).await
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn parse(app: &App, body: &[u8], endpoint: Endpoint) -> std::result::Result<Parsed, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("the body is not valid JSON: {e}"), None))?;
    let fields = if endpoint == Endpoint::Chat { CHAT_FIELDS } else { COMPLETION_FIELDS };
    check_fields(&value, fields)?;
    let wrong = |e: serde_json::Error| ApiError::invalid(format!("invalid request: {e}"), None);
    let parsed = match endpoint {
        Endpoint::Chat => serde_json::from_value::<ChatRequest>(value).map_err(wrong)?.parse(&app.config.defaults)?,
        Endpoint::Completions => {
            serde_json::from_value::<CompletionRequest>(value).map_err(wrong)?.parse(&app.config.defaults)?
        }
    };
    if parsed.method == Method::SelfConsistency && parsed.logprobs.is_some() {
        return Err(ApiError::invalid("logprobs are not reported under self-consistency", Some("logprobs")));
    }
    Ok(parsed)
}

async fn generate(
    app: Arc<App>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
    endpoint: Endpoint,
) -> Response {
    let response = match start(&app, &headers, body, endpoint).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    app.metrics.request(endpoint.path(), response.status().as_u16());
    response
}

/// What the model thread says about prompt `.0` of a request.
type Event = (usize, JobEvent);

/// A request in flight: dropping it (answered, or the client went away) cancels its
/// jobs, which is a no-op once they are done, and frees its admission.
struct InFlight {
    app: Arc<App>,
    key: u64,
    cancels: Vec<Cancel>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.cancels.iter().for_each(Cancel::cancel);
        self.app.in_flight.lock().expect("in-flight lock").remove(&self.key);
        self.app.admitted.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn start(
    app: &Arc<App>,
    headers: &HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
    endpoint: Endpoint,
) -> std::result::Result<Response, ApiError> {
    app.authorise(headers)?;
    app.available()?;
    let body = body.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(_) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::invalid(format!("the request body is over {} bytes", app.config.body_limit), None)
        }
        other => ApiError::invalid(format!("cannot read the request body: {}", other.body_text()), None),
    })?;
    let parsed = parse(app, &body, endpoint)?;
    let limit = app.config.max_batch + app.config.queue;
    if app.admitted.fetch_add(1, Ordering::SeqCst) >= limit {
        app.admitted.fetch_sub(1, Ordering::SeqCst);
        return Err(ApiError::busy(format!(
            "the server is full ({} generating, {} queued): retry later",
            app.config.max_batch, app.config.queue
        )));
    }
    let key = app.next_id.fetch_add(1, Ordering::SeqCst);
    let mut guard = InFlight { app: app.clone(), key, cancels: Vec::new() };
    let received = Instant::now();
    let (tx, mut rx) = tmpsc::unbounded_channel::<Event>();
    let prompts = parsed.requests.len();
    let stops = parsed.requests[0].stop.clone();
    for (i, mut request) in parsed.requests.into_iter().enumerate() {
        let cancel = Cancel::new();
        request.cancel = Some(cancel.clone());
        guard.cancels.push(cancel);
        let tx = tx.clone();
        let app2 = app.clone();
        let mut last: Vec<Option<Instant>> = vec![None; parsed.choices];
        let (mut started, mut seen_token) = (false, false);
        let events = move |ev: JobEvent| {
            let m = &app2.metrics;
            match &ev {
                JobEvent::Started { prompt_tokens } => {
                    started = true;
                    m.queued.fetch_sub(1, Ordering::Relaxed);
                    m.running.fetch_add(1, Ordering::Relaxed);
                    m.prompt_tokens.fetch_add(*prompt_tokens as u64, Ordering::Relaxed);
                }
                JobEvent::Token(t) => {
                    let now = Instant::now();
                    if !std::mem::replace(&mut seen_token, true) {
                        m.time_to_first_token.observe((now - received).as_secs_f64());
                    }
                    if let Some(prev) = last[t.choice].replace(now) {
                        m.token_latency.observe((now - prev).as_secs_f64());
                    }
                }
                JobEvent::Done(result) => {
                    if started {
                        m.running.fetch_sub(1, Ordering::Relaxed);
                    } else {
                        m.queued.fetch_sub(1, Ordering::Relaxed);
                    }
                    if let Ok(done) = result {
                        let n: usize = done.iter().map(completion_tokens).sum();
                        m.generated_tokens.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
            }
            tx.send((i, ev)).is_ok()
        };
        let job = Job {
            request,
            choices: parsed.choices,
            top_logprobs: parsed.logprobs.unwrap_or(0),
            strict_context: parsed.explicit_max_tokens,
            events: Box::new(events),
        };
        // Counted before it is sent: the model thread may start it at once.
        app.metrics.queued.fetch_add(1, Ordering::Relaxed);
        let sent = app.jobs.lock().expect("jobs lock").as_ref().map(|jobs| jobs.send(job).is_ok());
        if sent != Some(true) {
            app.metrics.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(ApiError::unavailable("the server is shutting down"));
        }
    }
    drop(tx);
    app.in_flight.lock().expect("in-flight lock").insert(key, guard.cancels.clone());

    // Every prompt must start (or be refused) before the answer begins.
    let mut prompt_tokens = 0;
    let mut early: Vec<Event> = Vec::new();
    let mut started = 0;
    while started < prompts {
        match rx.recv().await {
            Some((_, JobEvent::Started { prompt_tokens: p })) => {
                prompt_tokens += p;
                started += 1;
            }
            Some((_, JobEvent::Done(Err(e)))) => return Err(job_error(e)),
            Some(ev) => early.push(ev),
            None => return Err(ApiError::internal("the model thread stopped")),
        }
    }
    let header = Header {
        endpoint,
        id: format!("{}-{key:016x}{:08x}", if endpoint == Endpoint::Chat { "chatcmpl" } else { "cmpl" }, now_secs()),
        created: now_secs(),
        model: app.model_id.clone(),
        method: parsed.method,
        logprobs: parsed.logprobs,
    };
    let answer = Answer {
        header,
        states: (0..prompts * parsed.choices).map(|_| ChoiceState::default()).collect(),
        done: vec![None; prompts],
        per_prompt: parsed.choices,
        stops,
        prompt_tokens,
    };
    if parsed.stream {
        Ok(stream(answer, rx, early, guard, parsed.include_usage))
    } else {
        let mut answer = answer;
        for ev in early {
            answer.absorb(ev)?;
        }
        while answer.done.iter().any(Option::is_none) {
            match rx.recv().await {
                Some(ev) => answer.absorb(ev)?,
                None => return Err(ApiError::internal("the model thread stopped")),
            }
        }
        drop(guard);
        Ok(axum::Json(answer.response()).into_response())
    }
}

/// A job that failed: the request's fault (400) or the server's (500).
fn job_error(e: Error) -> ApiError {
    match e {
        Error::Invalid(_) | Error::Model(crate::models::ModelError::ContextOverflow { .. }) => {
            ApiError::invalid(e.to_string(), None)
        }
        Error::Model(crate::models::ModelError::Tokenizer(_)) => ApiError::invalid(e.to_string(), Some("prompt")),
        other => ApiError::internal(other.to_string()),
    }
}

/// A response being assembled from its jobs' events.
struct Answer {
    header: Header,
    /// One per choice: prompt i's choice c is `i·per_prompt + c`.
    states: Vec<ChoiceState>,
    done: Vec<Option<Vec<Completion>>>,
    per_prompt: usize,
    stops: Vec<String>,
    prompt_tokens: usize,
}

impl Answer {
    fn absorb(&mut self, (i, ev): Event) -> std::result::Result<(), ApiError> {
        match ev {
            JobEvent::Started { .. } => {}
            JobEvent::Token(t) => {
                let st = &mut self.states[i * self.per_prompt + t.choice];
                st.text.push_str(&t.text);
                st.tokens.push(t);
            }
            JobEvent::Done(Ok(c)) => self.done[i] = Some(c),
            JobEvent::Done(Err(e)) => return Err(job_error(e)),
        }
        Ok(())
    }

    fn completions(&self) -> Vec<&Completion> {
        self.done.iter().flat_map(|d| d.iter().flatten()).collect()
    }

    fn response(&self) -> serde_json::Value {
        self.header.response(&self.completions(), &self.states, self.prompt_tokens)
    }
}

fn stream(
    mut answer: Answer,
    rx: tmpsc::UnboundedReceiver<Event>,
    early: Vec<Event>,
    guard: InFlight,
    usage: bool,
) -> Response {
    // The role comes first in every chat choice, as OpenAI streams it.
    let mut opening = String::new();
    if answer.header.endpoint == Endpoint::Chat {
        for index in 0..answer.states.len() {
            opening += &sse(&answer.header.chunk(index, Some(""), true, &[], 0, None, usage));
        }
    }
    let mut pending: std::collections::VecDeque<String> = std::collections::VecDeque::from([opening]);
    for ev in early {
        pending.extend(answer.chunks(ev, usage));
    }
    let state = (answer, rx, pending, Some(guard), usage);
    let body = futures_util::stream::unfold(state, |(mut answer, mut rx, mut pending, mut guard, usage)| async move {
        loop {
            if let Some(chunk) = pending.pop_front() {
                return Some((
                    Ok::<_, std::convert::Infallible>(Bytes::from(chunk)),
                    (answer, rx, pending, guard, usage),
                ));
            }
            guard.as_ref()?;
            if answer.done.iter().all(Option::is_some) {
                if usage {
                    let completion: usize = answer.completions().iter().map(|c| completion_tokens(c)).sum();
                    pending.push_back(sse(&answer.header.usage_chunk(answer.prompt_tokens, completion)));
                }
                pending.push_back("data: [DONE]\n\n".into());
                guard = None;
                continue;
            }
            match rx.recv().await {
                Some(ev) => pending.extend(answer.chunks(ev, usage)),
                None => {
                    pending.push_back(sse(&ApiError::internal("the model thread stopped").body()));
                    guard = None;
                }
            }
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(body))
        .expect("a valid response")
}

impl Answer {
    /// The SSE chunks one event gives.
    fn chunks(&mut self, (i, ev): Event, usage: bool) -> Vec<String> {
        match ev {
            JobEvent::Started { .. } => Vec::new(),
            JobEvent::Token(t) => {
                let index = i * self.per_prompt + t.choice;
                let st = &mut self.states[index];
                let offset = st.text.len();
                st.text.push_str(&t.text);
                let upto = releasable(&st.text, &self.stops);
                let text = if upto > st.sent { &st.text[st.sent..upto] } else { "" };
                let chunk = self.header.chunk(index, Some(text), false, std::slice::from_ref(&t), offset, None, usage);
                st.sent = st.sent.max(upto);
                vec![sse(&chunk)]
            }
            JobEvent::Done(Ok(completions)) => {
                let mut out = Vec::new();
                for (c, completion) in completions.iter().enumerate() {
                    let index = i * self.per_prompt + c;
                    let st = &mut self.states[index];
                    // The library's final text has the stop string cut and any held-back
                    // tail that was not one; send what the client has not seen.
                    let rest = completion.text.get(st.sent..).unwrap_or("");
                    let finish = finish_reason(completion.generation().stop);
                    out.push(sse(&self.header.chunk(
                        index,
                        Some(rest),
                        false,
                        &[],
                        0,
                        Some((finish, completion)),
                        usage,
                    )));
                    st.sent = completion.text.len();
                }
                self.done[i] = Some(completions);
                out
            }
            JobEvent::Done(Err(e)) => {
                self.done[i] = Some(Vec::new());
                vec![sse(&job_error(e).body())]
            }
        }
    }
}
