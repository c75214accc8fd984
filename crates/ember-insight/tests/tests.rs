//! insightd end to end: the real binary on 127.0.0.1 (ephemeral ports), the real model
//! (`EMBER_TEST_MODEL`; with `CI=true` a missing model fails) and real probes
//! (`EMBER_REQUIRE_BPF=1` makes missing BPF a failure). One daemon per test, stopped with
//! SIGTERM when the test ends.

mod common;

mod alertmanager;
mod api;
mod batching;
mod errors;
mod grafana;
mod history;
mod injection;
mod k8s;
mod limits;
mod native;
mod neighbour;
mod ops;
mod probes;
mod sampling;
mod slots;
mod storm;
mod structured;
