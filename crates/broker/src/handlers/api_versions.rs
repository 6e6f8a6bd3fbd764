//! ApiVersions: the APIs and versions this broker serves, truthfully, and from v4 the
//! features it supports and has finalized: `transaction.version` 2 (KIP-890 part 2), which
//! is what makes a Kafka 4 client use EndTxn v5, Produce v12 and TxnOffsetCommit v5.

use bytes::Bytes;
use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use strom_coordinator::txn::TRANSACTION_VERSION_2;

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

/// The feature Strom reports, supported from level 0 and finalized at its top level.
const TRANSACTION_VERSION: &str = "transaction.version";

/// The list of supported APIs, and from v4 the features. Kafka leaves features whose
/// lowest level is 0 out of v3 answers (KAFKA-17492: older parsers refuse them); Strom
/// leaves all of them out of v3 and below, the finalized ones too, because librdkafka 2.0
/// mis-parses ApiVersions feature tags, and no client before v4 uses transaction.version.
pub(super) fn handle(_request: ApiVersionsRequest, version: i16) -> ApiVersionsResponse {
    let response = ApiVersionsResponse::default().with_api_keys(table());
    if version < 4 {
        return response;
    }
    let name = StrBytes::from_static_str(TRANSACTION_VERSION);
    response
        .with_supported_features(vec![SupportedFeatureKey::default()
            .with_name(name.clone())
            .with_min_version(0)
            .with_max_version(TRANSACTION_VERSION_2)])
        // The level never changes while a broker runs: one epoch for its whole life.
        .with_finalized_features_epoch(0)
        .with_finalized_features(vec![FinalizedFeatureKey::default()
            .with_name(name)
            .with_min_version_level(TRANSACTION_VERSION_2)
            .with_max_version_level(TRANSACTION_VERSION_2)])
}

/// The v0 answer to an ApiVersions version we do not know.
pub(super) fn unsupported(correlation_id: i32) -> Result<Bytes, RequestError> {
    let body = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(table());
    respond(ApiKey::ApiVersions, 0, correlation_id, &body)
}
