//! Shared test fixtures.
#![allow(dead_code)]

pub mod hub_server;
