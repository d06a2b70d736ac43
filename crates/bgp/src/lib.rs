//! ferrolb's BGP speaker.
#![warn(missing_docs)]

pub mod message;
