//! Behaviour tests of the segment manager over the in-memory store and fake allocator.

mod allocation;
mod concurrency;
mod restart;
mod schema;
mod seal;
mod support;
mod tick;
