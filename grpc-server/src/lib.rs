//! grpc-server: the gRPC server surface the auth-service, the todo-service and the gateway share.
//!
//! Layout:
//! - [`codec_errors`]: `CodecErrorsLayer`, which re-issues tonic's refusals of an undecodable or
//!   oversized request message with the contract's codes, through the service's own error type;
//! - [`reflection`]: server reflection v1 + v1alpha over the descriptor sets a server registers;
//! - [`shutdown`]: `shutdown_signal()`, Ctrl-C or SIGTERM, for the binaries' `run_until`.

pub mod codec_errors;
pub mod reflection;
pub mod shutdown;

pub use codec_errors::{CodecErrorsLayer, CodecRefusal};
pub use reflection::reflection_servers;
pub use shutdown::shutdown_signal;
