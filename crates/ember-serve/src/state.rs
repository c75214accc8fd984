//! [`Server`]: what every handler shares (the model, its settings, the admission of
//! generations and the metrics).

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use tokio::sync::Semaphore;

use crate::config::ModelConfig;
use crate::llm::Llm;
use crate::metrics::ServeMetrics;

/// The handlers' state: [`router`](crate::router) takes one.
pub type AppState = Arc<Server>;

/// Where the model is.
#[derive(Debug, Clone, Default)]
pub enum ModelState {
    /// None configured.
    #[default]
    None,
    /// Loading from this path.
    Loading(PathBuf),
    /// Loaded.
    Ready(Arc<Llm>),
    /// Loading failed.
    Failed {
        /// The file.
        path: PathBuf,
        /// Why.
        error: String,
    },
}

impl ModelState {
    /// `none`, `loading`, `failed` or `ready`.
    pub fn name(&self) -> &'static str {
        match self {
            ModelState::None => "none",
            ModelState::Loading(_) => "loading",
            ModelState::Failed { .. } => "failed",
            ModelState::Ready(_) => "ready",
        }
    }
}

/// The OpenAI-compatible server: the model (set once it is loaded, so that the routes can
/// answer `/health` while it loads), its settings, and the admission of generations.
#[derive(Debug)]
pub struct Server {
    /// The model's settings (the limits and defaults every request is checked against).
    pub config: ModelConfig,
    /// The metrics the handlers and the engine count.
    pub metrics: ServeMetrics,
    /// Admission of API generations: `max_concurrent` running plus `queue` waiting; a
    /// request that finds none free is answered 429.
    pub slots: Arc<Semaphore>,
    /// `owned_by` of the model in `/v1/models` (`ember-serve`; insightd: `insightd`).
    pub owned_by: String,
    /// What a 503 for want of a model tells the client to do.
    pub no_model_hint: String,
    model: RwLock<ModelState>,
}

impl Server {
    /// A server for `config` with no model yet ([`Server::set_model`] gives it one); the
    /// handlers count in `metrics` (a clone shares the handles, so the application can
    /// register them in its own registry).
    pub fn new(config: ModelConfig, metrics: ServeMetrics) -> Server {
        Server {
            slots: Arc::new(Semaphore::new(config.max_concurrent + config.queue)),
            config,
            metrics,
            owned_by: "ember-serve".into(),
            no_model_hint: "the server loads one at start".into(),
            model: RwLock::new(ModelState::None),
        }
    }

    /// A server of the model at `config.path`, loaded now (blocking: seconds for a large
    /// model; an application that must answer `/health` meanwhile calls [`Server::new`] and
    /// loads on a thread of its own).
    ///
    /// # Errors
    ///
    /// `config.path` is unset, or the model does not load (see [`Llm::load`]).
    pub fn load(config: ModelConfig) -> anyhow::Result<Arc<Server>> {
        let Some(path) = config.path.clone() else {
            anyhow::bail!("no model file: set ModelConfig::path");
        };
        let server = Server::new(config, ServeMetrics::default());
        let llm = Llm::load(&path, &server.config, server.metrics.engine.clone())?;
        server.set_model(ModelState::Ready(Arc::new(llm)));
        Ok(Arc::new(server))
    }

    /// The model state.
    pub fn model_state(&self) -> ModelState {
        self.model.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The loaded model, if any.
    pub fn llm(&self) -> Option<Arc<Llm>> {
        match self.model_state() {
            ModelState::Ready(llm) => Some(llm),
            _ => None,
        }
    }

    /// Sets the model state.
    pub fn set_model(&self, state: ModelState) {
        *self.model.write().unwrap_or_else(|e| e.into_inner()) = state;
    }
}
