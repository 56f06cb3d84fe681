//! Shared harness for the integration tests: real processes, real servers, temp dirs, kill on
//! drop.
#![allow(dead_code)]

pub mod agent;
