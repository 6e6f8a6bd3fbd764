//! The error codes a response carries, wherever its schema puts them, for
//! `strom_request_errors_total`: one entry per occurrence, NONE left out. The paths follow
//! each response's schema (Kafka's `AbstractResponse::errorCounts`).

use kafka_protocol::messages::*;

/// A response whose error codes can be tallied.
pub trait ErrorCodes {
    /// Calls `f` with every non-zero error code in the response.
    fn each_error(&self, f: &mut dyn FnMut(i16));
}

/// Walks one path: `field[]` steps into each element of a list, `.field` is the code.
macro_rules! walk {
    ($v:expr, $f:ident; . $code:ident) => {
        if $v.$code != 0 {
            $f($v.$code)
        }
    };
    ($v:expr, $f:ident; $list:ident [] $($rest:tt)*) => {
        for item in &$v.$list {
            walk!(item, $f; $($rest)*);
        }
    };
}

macro_rules! error_codes {
    ($($ty:ident { $([$($path:tt)*])* })*) => {
        $(impl ErrorCodes for $ty {
            fn each_error(&self, f: &mut dyn FnMut(i16)) {
                $(walk!(self, f; $($path)*);)*
            }
        })*
    };
}

error_codes! {
    ProduceResponse { [responses[] partition_responses[] .error_code] }
    FetchResponse { [.error_code] [responses[] partitions[] .error_code] }
    ListOffsetsResponse { [topics[] partitions[] .error_code] }
    OffsetForLeaderEpochResponse { [topics[] partitions[] .error_code] }
    MetadataResponse { [topics[] .error_code] [topics[] partitions[] .error_code] [.error_code] }
    ApiVersionsResponse { [.error_code] }
    CreateTopicsResponse { [topics[] .error_code] [topics[] .topic_config_error_code] }
    DeleteTopicsResponse { [responses[] .error_code] }
    DeleteRecordsResponse { [topics[] partitions[] .error_code] }
    DescribeConfigsResponse { [results[] .error_code] }
    AlterConfigsResponse { [responses[] .error_code] }
    DescribeLogDirsResponse { [.error_code] [results[] .error_code] }
    CreatePartitionsResponse { [results[] .error_code] }
    IncrementalAlterConfigsResponse { [responses[] .error_code] }
    DescribeClusterResponse { [.error_code] }
    InitProducerIdResponse { [.error_code] }
    DescribeTopicPartitionsResponse { [topics[] .error_code] [topics[] partitions[] .error_code] }
    DescribeQuorumResponse { [.error_code] [topics[] partitions[] .error_code] }
    ElectLeadersResponse { [.error_code] [replica_election_results[] partition_result[] .error_code] }
    AlterPartitionReassignmentsResponse { [.error_code] [responses[] partitions[] .error_code] }
    ListPartitionReassignmentsResponse { [.error_code] }
    FindCoordinatorResponse { [.error_code] [coordinators[] .error_code] }
    JoinGroupResponse { [.error_code] }
    SyncGroupResponse { [.error_code] }
    HeartbeatResponse { [.error_code] }
    LeaveGroupResponse { [.error_code] [members[] .error_code] }
    OffsetCommitResponse { [topics[] partitions[] .error_code] }
    OffsetFetchResponse { [topics[] partitions[] .error_code] [.error_code] [groups[] topics[] partitions[] .error_code] [groups[] .error_code] }
    ListGroupsResponse { [.error_code] }
    DescribeGroupsResponse { [groups[] .error_code] }
    DeleteGroupsResponse { [results[] .error_code] }
    OffsetDeleteResponse { [.error_code] [topics[] partitions[] .error_code] }
    ConsumerGroupHeartbeatResponse { [.error_code] }
    ConsumerGroupDescribeResponse { [groups[] .error_code] }
    AddPartitionsToTxnResponse { [.error_code] [results_by_transaction[] topic_results[] results_by_partition[] .partition_error_code] [results_by_topic_v3_and_below[] results_by_partition[] .partition_error_code] }
    AddOffsetsToTxnResponse { [.error_code] }
    EndTxnResponse { [.error_code] }
    WriteTxnMarkersResponse { [markers[] topics[] partitions[] .error_code] }
    TxnOffsetCommitResponse { [topics[] partitions[] .error_code] }
    DescribeTransactionsResponse { [transaction_states[] .error_code] }
    ListTransactionsResponse { [.error_code] }
    DescribeProducersResponse { [topics[] partitions[] .error_code] }
    SaslHandshakeResponse { [.error_code] }
    SaslAuthenticateResponse { [.error_code] }
    DescribeUserScramCredentialsResponse { [.error_code] [results[] .error_code] }
    AlterUserScramCredentialsResponse { [results[] .error_code] }
    DescribeAclsResponse { [.error_code] }
    CreateAclsResponse { [results[] .error_code] }
    DeleteAclsResponse { [filter_results[] .error_code] [filter_results[] matching_acls[] .error_code] }
    DescribeClientQuotasResponse { [.error_code] }
    AlterClientQuotasResponse { [entries[] .error_code] }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_codes_are_found_and_success_is_not_counted() {
        let r = ProduceResponse::default().with_responses(vec![
            produce_response::TopicProduceResponse::default().with_partition_responses(vec![
                produce_response::PartitionProduceResponse::default().with_error_code(6),
                produce_response::PartitionProduceResponse::default(),
                produce_response::PartitionProduceResponse::default().with_error_code(19),
            ]),
        ]);
        let mut seen = Vec::new();
        r.each_error(&mut |c| seen.push(c));
        assert_eq!(seen, vec![6, 19]);
        let mut seen = Vec::new();
        FetchResponse::default()
            .with_error_code(71)
            .each_error(&mut |c| seen.push(c));
        assert_eq!(seen, vec![71]);
    }
}
