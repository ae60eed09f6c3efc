#![doc = include_str!("../README.md")]

mod backoff;
mod tls;

pub use backoff::Backoff;
pub use tls::{
    HANDSHAKE_TIMEOUT, TransportError, certificates, client_config, endpoint, error_chain,
    server_tls,
};
