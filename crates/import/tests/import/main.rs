//! Behaviour tests of `datacoord-import` on its fakes.

mod relay;
mod save;
mod support;
