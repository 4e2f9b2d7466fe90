//! Server reflection v1 and v1alpha (grpcurl 1.8 asks v1alpha, newer clients v1), both built
//! from the same descriptor sets and the same list of advertised services.

use tonic_reflection::server::{Builder, Error, v1, v1alpha};

/// The name each reflection version serves under.
const REFLECTION_V1: &str = "grpc.reflection.v1.ServerReflection";
const REFLECTION_V1ALPHA: &str = "grpc.reflection.v1alpha.ServerReflection";

/// Builds the v1 and v1alpha reflection servers over `descriptor_sets` plus grpc.health.v1's.
///
/// `listed` names the services `ListServices` advertises; each reflection server adds its own
/// name when it is not already there. `None` advertises every service in the descriptor sets
/// (which, for a set like `proto::FILE_DESCRIPTOR_SET`, includes services this server may not
/// itself implement). Pass `tonic_types::pb::FILE_DESCRIPTOR_SET` in `descriptor_sets` so that
/// clients like grpcurl can decode `google.rpc` error details.
pub fn reflection_servers(
    descriptor_sets: &[&'static [u8]],
    listed: Option<&[&str]>,
) -> Result<
    (
        v1::ServerReflectionServer<impl v1::ServerReflection>,
        v1alpha::ServerReflectionServer<impl v1alpha::ServerReflection>,
    ),
    Error,
> {
    let v1 = configure(descriptor_sets, listed, REFLECTION_V1).build_v1()?;
    let v1alpha = configure(descriptor_sets, listed, REFLECTION_V1ALPHA).build_v1alpha()?;
    Ok((v1, v1alpha))
}

fn configure(
    descriptor_sets: &[&'static [u8]],
    listed: Option<&[&str]>,
    reflection_name: &str,
) -> Builder<'static> {
    let mut builder = Builder::configure();
    for set in descriptor_sets {
        builder = builder.register_encoded_file_descriptor_set(set);
    }
    builder = builder.register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
    if let Some(listed) = listed {
        for name in listed {
            builder = builder.with_service_name(*name);
        }
        if !listed.contains(&reflection_name) {
            builder = builder.with_service_name(reflection_name);
        }
    }
    builder
}
