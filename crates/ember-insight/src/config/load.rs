//! Loading: the TOML file, with the command-line flags applied over it.

use std::path::Path;

use anyhow::Context as _;

use super::probes::probe_names;
use super::Config;
use crate::cli::Cli;

impl Config {
    /// Reads a TOML file.
    ///
    /// # Errors
    ///
    /// The file cannot be read or does not parse (the message names the file and the field),
    /// or it is named `.yaml`/`.yml`: YAML configs are no longer read (serde_yaml is
    /// unmaintained), and the error says how to convert one.
    pub fn from_file(path: &Path) -> anyhow::Result<Config> {
        if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            anyhow::bail!(
                "config file {} is YAML, which insightd no longer reads (its parser \
                 serde_yaml is unmaintained): write it as TOML, e.g. `fork_rate:` with \
                 `threshold: 5.0` under `rules:` becomes `[rules.fork_rate]` with \
                 `threshold = 5.0` (see the README's Configuration), and pass the .toml file",
                path.display()
            );
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid TOML config {}", path.display()))
    }

    /// The file named by `--config` (or the defaults), with the flags applied, validated.
    ///
    /// # Errors
    ///
    /// As [`Config::from_file`] and [`Config::validate`].
    pub fn from_cli(cli: &Cli) -> anyhow::Result<Config> {
        let mut config = match &cli.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(bind) = cli.bind {
            config.bind = bind;
        }
        if cli.token.is_some() {
            config.token.clone_from(&cli.token);
        }
        if cli.model.is_some() {
            config.model.path.clone_from(&cli.model);
        }
        if cli.chat_template.is_some() {
            config.model.chat_template.clone_from(&cli.chat_template);
        }
        if let Some(n) = cli.ctx_size {
            config.model.ctx_size = n;
        }
        if cli.threads.is_some() {
            config.model.threads = cli.threads;
        }
        if let Some(priority) = cli.model_priority {
            config.model.priority = priority;
        }
        if let Some(n) = cli.max_concurrent {
            config.model.max_concurrent = n;
        }
        if let Some(n) = cli.queue {
            config.model.queue = n;
        }
        if let Some(dir) = &cli.state_dir {
            config.state.dir = Some(dir.clone());
        }
        if let Some(on) = cli.kv_unified {
            config.model.kv_unified = on;
        }
        if let Some(mode) = cli.probe_mode {
            config.probes.mode = mode;
        }
        if cli.require_all_probes {
            config.probes.require_all = true;
        }
        if let Some(name) = &cli.test_fail_probe {
            let probe = ember_probes::Probe::from_name(name).with_context(|| {
                format!(
                    "--test-fail-probe {name}: no such probe (one of {})",
                    probe_names()
                )
            })?;
            config.probes.test_fail = Some(probe);
        }
        config.validate()?;
        Ok(config)
    }
}
