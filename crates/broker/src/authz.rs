//! What a client may do to a resource, as KIP-430's "authorized operations" report it in
//! Metadata, DescribeCluster and the DescribeGroups APIs.
//!
//! Strom has no authorizer yet, and Kafka without one allows every operation a resource
//! type supports: that is what these fields carry. The authorizer, when it comes, answers
//! here.

/// Kafka's AclOperation codes (the bit each sets in an authorized-operations field).
mod op {
    pub const READ: u8 = 3;
    pub const WRITE: u8 = 4;
    pub const CREATE: u8 = 5;
    pub const DELETE: u8 = 6;
    pub const ALTER: u8 = 7;
    pub const DESCRIBE: u8 = 8;
    pub const CLUSTER_ACTION: u8 = 9;
    pub const DESCRIBE_CONFIGS: u8 = 10;
    pub const ALTER_CONFIGS: u8 = 11;
    pub const IDEMPOTENT_WRITE: u8 = 12;
}

/// The resource types that report authorized operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// A topic.
    Topic,
    /// A consumer group (its configs are KIP-848's group configs).
    Group,
    /// The cluster.
    Cluster,
}

impl Resource {
    /// Every operation Kafka defines for the resource type.
    fn supported(self) -> &'static [u8] {
        use op::*;
        match self {
            Resource::Topic => &[
                READ,
                WRITE,
                CREATE,
                DELETE,
                ALTER,
                DESCRIBE,
                DESCRIBE_CONFIGS,
                ALTER_CONFIGS,
            ],
            Resource::Group => &[READ, DELETE, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS],
            Resource::Cluster => &[
                CREATE,
                ALTER,
                DESCRIBE,
                CLUSTER_ACTION,
                DESCRIBE_CONFIGS,
                ALTER_CONFIGS,
                IDEMPOTENT_WRITE,
            ],
        }
    }
}

/// The authorized-operations bit field for `resource` (bit n set: operation n allowed).
pub fn authorized_operations(resource: Resource) -> i32 {
    resource
        .supported()
        .iter()
        .fold(0i32, |bits, op| bits | (1 << op))
}

/// The value a response carries when the client did not ask (Kafka's INT32_MIN).
pub const NOT_REQUESTED: i32 = i32::MIN;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_fields_match_kafkas_operation_codes() {
        // READ(3) WRITE(4) CREATE(5) DELETE(6) ALTER(7) DESCRIBE(8) DESCRIBE_CONFIGS(10)
        // ALTER_CONFIGS(11).
        assert_eq!(authorized_operations(Resource::Topic), 0b1101_1111_1000);
        // READ DELETE DESCRIBE DESCRIBE_CONFIGS ALTER_CONFIGS.
        assert_eq!(authorized_operations(Resource::Group), 0b1101_0100_1000);
        // CREATE ALTER DESCRIBE CLUSTER_ACTION DESCRIBE_CONFIGS ALTER_CONFIGS IDEMPOTENT_WRITE.
        assert_eq!(authorized_operations(Resource::Cluster), 0b1_1111_1010_0000);
    }
}
