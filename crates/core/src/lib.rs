//! Cabildo's domain types: the norms it ingests, the passages it retrieves and cites, the
//! filters every query carries, and the errors they share.
//!
//! This crate knows nothing about storage, indexes, models or HTTP; every other crate depends
//! on it and it depends on none of them.
#![deny(missing_docs)]

mod filters;
#[cfg(any(test, feature = "test-fixtures"))]
pub mod fixtures;
mod models;
mod norm;
mod passage;
mod principal;
pub mod retrieval;
pub mod settings;

pub use filters::{today, AccessLevel, Filters};
pub use models::{
    ChatMessage, Embedder, FinishReason, Generation, GenerationRequest, Generator, ModelError,
    Reranker, Role,
};
pub use norm::{Jurisdiction, Language, Norm, NormKind};
pub use passage::{Passage, SearchHit};
pub use principal::{AccessRole, Principal};
pub use retrieval::{Fusion, HybridParams, Method};
pub use settings::Settings;

/// Errors for malformed domain values (a bad date, an unknown kind).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value given by a user or a file does not parse.
    #[error("invalid {what}: {value:?} ({why})")]
    Invalid {
        /// Which field.
        what: &'static str,
        /// The offending value.
        value: String,
        /// Why it is rejected.
        why: String,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
