//! ApiVersions: the APIs and versions this broker serves, truthfully.

use bytes::Bytes;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::ResponseError;

use super::{respond, RequestError, SUPPORTED};

fn table() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|(k, lo, hi)| {
            ApiVersion::default()
                .with_api_key(*k as i16)
                .with_min_version(*lo)
                .with_max_version(*hi)
        })
        .collect()
}

/// The list of supported APIs. No feature tags are sent: librdkafka 2.0.2 mis-parses them.
pub(super) fn handle(_request: ApiVersionsRequest) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(table())
}

/// The v0 answer to an ApiVersions version we do not know.
pub(super) fn unsupported(correlation_id: i32) -> Result<Bytes, RequestError> {
    let body = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(table());
    respond(ApiKey::ApiVersions, 0, correlation_id, &body)
}
