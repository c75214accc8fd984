//! Running the daemon: [`serve`] (HTTP until SIGTERM/SIGINT) and [`once`] (a timed report).

use std::sync::atomic::Ordering;
use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::config::Config;
use crate::insights::{self, InsightJob};
use crate::llm::Llm;
use crate::report;
use crate::state::{ModelState, Shared};
use crate::telemetry;

/// How long shutdown waits for open requests before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown`, then waits for open connections to end.
///
/// hyper's HTTP/1 server with title-case header names (`Access-Control-Allow-Origin`, as
/// llama-server and most servers write them): names are case-insensitive, but clients that
/// read headers into a plain map, llama-server's test suite among them, look them up as
/// written. axum's `serve` has no such setting; otherwise this is what it does.
async fn serve_http(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    log::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let connection = hyper::server::conn::http1::Builder::new()
            .title_case_headers(true)
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                log::debug!("connection ended with an error: {e}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Starts telemetry, the insight worker and the model load (in the background), then serves
/// HTTP on `config.bind` until SIGTERM or SIGINT; then stops accepting, lets running requests
/// finish (up to 10 s), ends event streams and stops the probes.
///
/// # Errors
///
/// The address cannot be bound, telemetry cannot start.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    config.validate()?;
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("cannot listen on {}", config.bind))?;
    let addr = listener.local_addr()?;
    let mut more = Vec::new();
    for bind in &config.also_bind {
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("cannot listen on {bind} (also_bind)"))?;
        log::info!("listening on http://{}", listener.local_addr()?);
        more.push(listener);
    }
    let shared = Shared::open(config)?;
    // Listen first so that /healthz answers while the probes and the model load.
    log::info!("listening on http://{addr}");
    eprintln!(
        "insightd {} listening on http://{addr}",
        crate::state::VERSION
    );

    let (jobs_tx, jobs_rx) = sync_channel::<InsightJob>(8);
    let worker = if shared.config.insights.enabled && shared.config.model.path.is_some() {
        let s = shared.clone();
        Some(
            std::thread::Builder::new()
                .name("insightd-insights".into())
                .spawn(move || insights::run_worker(s, jobs_rx))?,
        )
    } else {
        None
    };
    if let Some(path) = shared.config.model.path.clone() {
        shared.set_model(ModelState::Loading(path.clone()));
        let s = shared.clone();
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            match Llm::load(&path, &s.config.model, s.metrics.serve.engine.clone()) {
                Ok(llm) => {
                    log::info!(
                        "model {} loaded in {:.1} s (template {})",
                        llm.name(),
                        started.elapsed().as_secs_f64(),
                        if llm.template().len() > 40 {
                            "embedded"
                        } else {
                            llm.template()
                        }
                    );
                    s.metrics.model_loaded.set(1);
                    s.set_model(ModelState::Ready(Arc::new(llm)));
                }
                Err(e) => {
                    log::error!("{e:#}");
                    s.set_model(ModelState::Failed {
                        path,
                        error: format!("{e:#}"),
                    });
                }
            }
        });
    }
    let app = crate::http::app(shared.clone());
    // The other addresses serve the same router until the stop; the main one's graceful
    // shutdown below bounds the wait for all of them.
    let also: Vec<_> = more
        .into_iter()
        .map(|listener| {
            let app = app.clone();
            tokio::spawn(serve_http(listener, app, shutdown_signal()))
        })
        .collect();
    let server = tokio::spawn({
        let shared = shared.clone();
        serve_http(listener, app, async move {
            shutdown_signal().await;
            log::info!("shutting down: no new connections; ending event streams");
            shared.stopping.store(true, Ordering::Relaxed);
            shared.hub.close_all();
        })
    });
    // Alerts to Alertmanager (when configured): a task of its own, never in the rules' way.
    let alertmanager = tokio::spawn(crate::alertmanager::run(shared.clone()));
    // OTLP export (when configured): tasks of their own, fed through a bounded queue.
    let otlp = [
        tokio::spawn(crate::otlp::run_metrics(shared.clone())),
        tokio::spawn(crate::otlp::run_logs(shared.clone())),
    ];
    let telemetry_shared = shared.clone();
    let insight_tx = worker.is_some().then_some(jobs_tx);
    let telemetry =
        tokio::task::spawn_blocking(move || telemetry::start(telemetry_shared, insight_tx))
            .await??;

    // The server ends after the signal once connections close; bound that wait.
    let mut server = server;
    tokio::select! {
        r = &mut server => r??,
        () = async {
            while !shared.stopping.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => log::warn!("requests still open after {SHUTDOWN_GRACE:?}; exiting anyway"),
    }
    shared.stopping.store(true, Ordering::Relaxed);
    also.iter().for_each(tokio::task::JoinHandle::abort);
    alertmanager.abort();
    otlp.iter().for_each(tokio::task::JoinHandle::abort);
    let _ = tokio::task::spawn_blocking(move || {
        let _ = telemetry.join();
        if let Some(w) = worker {
            let _ = w.join();
        }
    })
    .await;
    log::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            log::error!("cannot listen for SIGINT: {e}");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                log::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => log::info!("SIGINT received"),
        () = term => log::info!("SIGTERM received"),
    }
}

/// Runs telemetry and the rules for `duration` and returns a readable report. With a model
/// configured, the first alert that fired gets an insight before the report.
///
/// # Errors
///
/// Telemetry cannot start, or the model cannot be loaded.
pub fn once(config: Config, duration: Duration) -> anyhow::Result<String> {
    let shared = Shared::open(config)?;
    let llm = match &shared.config.model.path {
        Some(path) => {
            let llm = Arc::new(Llm::load(
                path,
                &shared.config.model,
                shared.metrics.serve.engine.clone(),
            )?);
            shared.set_model(ModelState::Ready(llm.clone()));
            Some(llm)
        }
        None => None,
    };
    let (jobs_tx, jobs_rx) = sync_channel::<InsightJob>(64);
    let thread = telemetry::start(shared.clone(), Some(jobs_tx))?;
    let started = Instant::now();
    std::thread::sleep(duration);
    shared.stopping.store(true, Ordering::Relaxed);
    let _ = thread.join();
    let watched = started.elapsed();
    let mut insight_errors = Vec::new();
    if let Some(llm) = &llm {
        if shared.config.insights.enabled {
            for job in jobs_rx.try_iter().take(1) {
                match insights::generate(llm, &job, shared.config.insights.max_tokens) {
                    Ok(i) => shared
                        .insights
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(i),
                    Err(e) => insight_errors.push(format!("alert {}: {e:#}", job.alert.id)),
                }
            }
        }
    }
    Ok(report::render(&shared, watched, &insight_errors))
}
