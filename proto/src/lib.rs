//! Generated code for the project's gRPC contracts (`proto/**/*.proto`), plus the encoded
//! descriptor set that every service registers for server reflection. Nothing here is hand-written.

#![allow(unreachable_pub, clippy::all)]

/// `auth.v1`: session validation.
pub mod auth {
    /// Version 1 of the auth contract.
    pub mod v1 {
        tonic::include_proto!("auth.v1");
    }
}

/// `todo.v1`: per-user todos.
pub mod todo {
    /// Version 1 of the todo contract.
    pub mod v1 {
        tonic::include_proto!("todo.v1");
    }
}

/// The encoded `FileDescriptorSet` of every `.proto` above, for `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("descriptor");
