//! The `weft` subcommands, one module each, and what they share.

pub mod analyze;
pub mod apply;
pub mod bootstrap;
pub mod delete;
pub mod demo;
pub mod get;
pub mod proxy_config;
pub mod proxy_status;
pub mod token;
pub mod validate;
pub mod version;

use crate::client::{Client, ClientError};
use crate::source::InputError;
use std::io;
use std::path::PathBuf;
use thiserror::Error;
use weft_config::{Kind, Resource};

/// Global settings: where weftd is and how to authenticate to it.
#[derive(Debug)]
pub struct Context {
    pub server: String,
    pub token: Option<String>,
    pub data_dir: PathBuf,
}

impl Context {
    pub fn client(&self) -> Client {
        Client::new(
            &self.server,
            self.token.clone(),
            self.data_dir.join("token"),
        )
    }
}

/// A failure that ends a command. Per-resource problems are printed as they happen and
/// only change the exit code; these stop the command.
#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("{0}")]
    Usage(String),
    #[error("cannot write output: {0}")]
    Io(#[from] io::Error),
}

impl Error {
    /// The line printed on stderr: weftd's own errors read like kubectl's
    /// (`Error from server (NotFound): ...`), the rest start with `error:`.
    pub fn report(&self) -> String {
        match self {
            Error::Client(ClientError::Server(status)) => status.to_string(),
            other => format!("error: {other}"),
        }
    }
}

/// Resolves a kind as typed on the command line (`vs`, `virtualservices`, ...).
pub fn lookup_kind(word: &str) -> Result<Kind, Error> {
    Kind::lookup(word).ok_or_else(|| {
        Error::Usage(format!(
            "the server doesn't have a resource type {word:?}; see the kinds with \"weft get all\""
        ))
    })
}

/// `VirtualService default/reviews`, or `VirtualService reviews` without a namespace.
pub fn origin(r: &Resource) -> String {
    if r.metadata.namespace.is_empty() {
        format!("{} {}", r.kind(), r.metadata.name)
    } else {
        r.origin()
    }
}
