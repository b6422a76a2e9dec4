//! The compaction engine against real segment and index meta on a memory store (behind a
//! `FaultyKv`), a local chunk manager in a temp dir, fake DataNodes and RootCoord fakes.

mod commit;
mod dispatch;
mod loops;
mod poll;
mod restart;
mod support;
mod triggers;
