//! grpc-server: the gRPC server surface the auth-service, the todo-service and the gateway share.
//!
//! Layout:
//! - [`codec_errors`]: `CodecErrorsLayer`, which re-issues tonic's refusals of an undecodable or
//!   oversized request message with the contract's codes, through the service's own error type.

pub mod codec_errors;

pub use codec_errors::{CodecErrorsLayer, CodecRefusal};
