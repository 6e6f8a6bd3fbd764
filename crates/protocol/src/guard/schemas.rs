//! The request layouts [`super::check_request`] walks: for each request type Strom decodes, its
//! fields in wire order, the versions each is present in, whether it may be null, and its tagged
//! fields. The tables mirror what `kafka-protocol` 0.18's generated decoders read (including
//! their version ranges, which follow Kafka 4.0's floors): the guard is only sound if it reads
//! the same bytes as the decoder that runs after it. Field names are the crate's.
//!
//! Compact encodings (flexible versions) are not spelled out per field: a message switches all
//! its strings, bytes and arrays to compact form, and adds a tagged-field section to every
//! struct, from its `flexible_from` version on.

/// How a value is encoded.
#[derive(Debug)]
pub(crate) enum Kind {
    /// A fixed-width value: int8/16/32/64, bool or uuid.
    Fixed(usize),
    /// A string: i16 length, or unsigned-varint length + 1 when compact.
    Str { nullable: bool },
    /// Bytes or records: i32 length, or unsigned-varint length + 1 when compact.
    Bytes { nullable: bool },
    /// An array: i32 count, or unsigned-varint count + 1 when compact.
    Array { of: &'static Kind, nullable: bool },
    /// A nested struct (with its own tagged section in flexible versions).
    Struct(&'static Struct),
    /// A nullable struct: an int8 marker (1 present, else null), then the struct.
    OptionStruct(&'static Struct),
}

/// One field and the versions (inclusive) it is present in.
#[derive(Debug)]
pub(crate) struct Field {
    pub name: &'static str,
    pub min: i16,
    pub max: i16,
    /// `Some(tag)` for a tagged field: read from the struct's tagged section, not in order.
    pub tag: Option<u32>,
    pub kind: Kind,
}

impl Field {
    pub(crate) fn present(&self, version: i16) -> bool {
        (self.min..=self.max).contains(&version)
    }
}

/// A struct's fields, in wire order.
#[derive(Debug)]
pub(crate) struct Struct(pub &'static [Field]);

/// A request type.
#[derive(Debug)]
pub(crate) struct Message {
    pub api_key: i16,
    pub min_version: i16,
    pub max_version: i16,
    /// First flexible version ([`NEVER`] if none).
    pub flexible_from: i16,
    pub body: &'static Struct,
}

const ALL: i16 = i16::MAX;
const NEVER: i16 = i16::MAX;
const I8: Kind = Kind::Fixed(1);
const I16: Kind = Kind::Fixed(2);
const I32: Kind = Kind::Fixed(4);
const I64: Kind = Kind::Fixed(8);
const F64: Kind = Kind::Fixed(8);
const BOOL: Kind = Kind::Fixed(1);
const UUID: Kind = Kind::Fixed(16);
const STR: Kind = Kind::Str { nullable: false };
const NSTR: Kind = Kind::Str { nullable: true };
const BYTES: Kind = Kind::Bytes { nullable: false };
const NBYTES: Kind = Kind::Bytes { nullable: true };

const fn f(name: &'static str, min: i16, max: i16, kind: Kind) -> Field {
    Field {
        name,
        min,
        max,
        tag: None,
        kind,
    }
}

const fn tag(tag: u32, name: &'static str, min: i16, max: i16, kind: Kind) -> Field {
    Field {
        name,
        min,
        max,
        tag: Some(tag),
        kind,
    }
}

const fn arr(of: &'static Kind) -> Kind {
    Kind::Array {
        of,
        nullable: false,
    }
}

const fn narr(of: &'static Kind) -> Kind {
    Kind::Array { of, nullable: true }
}

const fn st(of: &'static Struct) -> Kind {
    Kind::Struct(of)
}

const fn msg(
    api_key: i16,
    min_version: i16,
    max_version: i16,
    flexible_from: i16,
    body: &'static Struct,
) -> Message {
    Message {
        api_key,
        min_version,
        max_version,
        flexible_from,
        body,
    }
}

/// The message for `api_key`, if Strom decodes it.
pub(crate) fn message(api_key: i16) -> Option<&'static Message> {
    MESSAGES.iter().find(|m| m.api_key == api_key)
}

/// The API keys with a schema, in [`MESSAGES`] order.
pub(crate) static KEYS: [i16; MESSAGES.len()] = {
    let mut keys = [0; MESSAGES.len()];
    let mut i = 0;
    while i < keys.len() {
        keys[i] = MESSAGES[i].api_key;
        i += 1;
    }
    keys
};

/// Every served request: `msg(api_key, min_version, max_version, flexible_from, body)`.
static MESSAGES: &[Message] = &[
    msg(18, 0, 4, 3, &API_VERSIONS_REQUEST),
    msg(3, 0, 13, 9, &METADATA_REQUEST),
    msg(0, 3, 13, 9, &PRODUCE_REQUEST),
    msg(1, 4, 18, 12, &FETCH_REQUEST),
    msg(2, 1, 10, 6, &LIST_OFFSETS_REQUEST),
    msg(23, 2, 4, 4, &OFFSET_FOR_LEADER_EPOCH_REQUEST),
    msg(19, 2, 7, 5, &CREATE_TOPICS_REQUEST),
    msg(20, 1, 6, 4, &DELETE_TOPICS_REQUEST),
    msg(37, 0, 3, 2, &CREATE_PARTITIONS_REQUEST),
    msg(32, 1, 4, 4, &DESCRIBE_CONFIGS_REQUEST),
    msg(33, 0, 2, 2, &ALTER_CONFIGS_REQUEST),
    msg(44, 0, 1, 1, &INCREMENTAL_ALTER_CONFIGS_REQUEST),
    msg(21, 0, 2, 2, &DELETE_RECORDS_REQUEST),
    msg(60, 0, 2, 0, &DESCRIBE_CLUSTER_REQUEST),
    msg(35, 1, 4, 2, &DESCRIBE_LOG_DIRS_REQUEST),
    msg(10, 0, 6, 3, &FIND_COORDINATOR_REQUEST),
    msg(11, 0, 9, 6, &JOIN_GROUP_REQUEST),
    msg(14, 0, 5, 4, &SYNC_GROUP_REQUEST),
    msg(12, 0, 4, 4, &HEARTBEAT_REQUEST),
    msg(13, 0, 5, 4, &LEAVE_GROUP_REQUEST),
    msg(8, 2, 9, 8, &OFFSET_COMMIT_REQUEST),
    msg(9, 1, 9, 6, &OFFSET_FETCH_REQUEST),
    msg(16, 0, 5, 3, &LIST_GROUPS_REQUEST),
    msg(15, 0, 6, 5, &DESCRIBE_GROUPS_REQUEST),
    msg(42, 0, 2, 2, &DELETE_GROUPS_REQUEST),
    msg(47, 0, 0, NEVER, &OFFSET_DELETE_REQUEST),
    msg(68, 0, 1, 0, &CONSUMER_GROUP_HEARTBEAT_REQUEST),
    msg(69, 0, 1, 0, &CONSUMER_GROUP_DESCRIBE_REQUEST),
    msg(22, 0, 5, 2, &INIT_PRODUCER_ID_REQUEST),
    msg(75, 0, 0, 0, &DESCRIBE_TOPIC_PARTITIONS_REQUEST),
    msg(55, 0, 2, 0, &DESCRIBE_QUORUM_REQUEST),
    msg(43, 0, 2, 2, &ELECT_LEADERS_REQUEST),
    msg(45, 0, 1, 0, &ALTER_PARTITION_REASSIGNMENTS_REQUEST),
    msg(46, 0, 0, 0, &LIST_PARTITION_REASSIGNMENTS_REQUEST),
    msg(24, 0, 5, 3, &ADD_PARTITIONS_TO_TXN_REQUEST),
    msg(25, 0, 4, 3, &ADD_OFFSETS_TO_TXN_REQUEST),
    msg(26, 0, 5, 3, &END_TXN_REQUEST),
    msg(27, 1, 1, 1, &WRITE_TXN_MARKERS_REQUEST),
    msg(28, 0, 5, 3, &TXN_OFFSET_COMMIT_REQUEST),
    msg(61, 0, 0, 0, &DESCRIBE_PRODUCERS_REQUEST),
    msg(65, 0, 0, 0, &DESCRIBE_TRANSACTIONS_REQUEST),
    msg(66, 0, 2, 0, &LIST_TRANSACTIONS_REQUEST),
    msg(17, 0, 1, NEVER, &SASL_HANDSHAKE_REQUEST),
    msg(36, 0, 2, 2, &SASL_AUTHENTICATE_REQUEST),
    msg(50, 0, 0, 0, &DESCRIBE_USER_SCRAM_CREDENTIALS_REQUEST),
    msg(51, 0, 0, 0, &ALTER_USER_SCRAM_CREDENTIALS_REQUEST),
    msg(29, 1, 3, 2, &ACL_FILTER),
    msg(30, 1, 3, 2, &CREATE_ACLS_REQUEST),
    msg(31, 1, 3, 2, &DELETE_ACLS_REQUEST),
    msg(48, 0, 1, 1, &DESCRIBE_CLIENT_QUOTAS_REQUEST),
    msg(49, 0, 1, 1, &ALTER_CLIENT_QUOTAS_REQUEST),
];

static QUOTA_COMPONENT: Struct = Struct(&[
    f("entity_type", 0, ALL, STR),
    f("match_type", 0, ALL, I8),
    f("match", 0, ALL, NSTR),
]);

static DESCRIBE_CLIENT_QUOTAS_REQUEST: Struct = Struct(&[
    f("components", 0, ALL, arr(&st(&QUOTA_COMPONENT))),
    f("strict", 0, ALL, BOOL),
]);

static QUOTA_ENTITY: Struct = Struct(&[
    f("entity_type", 0, ALL, STR),
    f("entity_name", 0, ALL, NSTR),
]);

static QUOTA_OP: Struct = Struct(&[
    f("key", 0, ALL, STR),
    f("value", 0, ALL, F64),
    f("remove", 0, ALL, BOOL),
]);

static QUOTA_ENTRY: Struct = Struct(&[
    f("entity", 0, ALL, arr(&st(&QUOTA_ENTITY))),
    f("ops", 0, ALL, arr(&st(&QUOTA_OP))),
]);

static ALTER_CLIENT_QUOTAS_REQUEST: Struct = Struct(&[
    f("entries", 0, ALL, arr(&st(&QUOTA_ENTRY))),
    f("validate_only", 0, ALL, BOOL),
]);

/// DescribeAclsRequest's body, and each filter of a DeleteAclsRequest.
static ACL_FILTER: Struct = Struct(&[
    f("resource_type_filter", 0, ALL, I8),
    f("resource_name_filter", 0, ALL, NSTR),
    f("pattern_type_filter", 1, ALL, I8),
    f("principal_filter", 0, ALL, NSTR),
    f("host_filter", 0, ALL, NSTR),
    f("operation", 0, ALL, I8),
    f("permission_type", 0, ALL, I8),
]);

static ACL_CREATION: Struct = Struct(&[
    f("resource_type", 0, ALL, I8),
    f("resource_name", 0, ALL, STR),
    f("resource_pattern_type", 1, ALL, I8),
    f("principal", 0, ALL, STR),
    f("host", 0, ALL, STR),
    f("operation", 0, ALL, I8),
    f("permission_type", 0, ALL, I8),
]);

static CREATE_ACLS_REQUEST: Struct = Struct(&[f("creations", 0, ALL, arr(&st(&ACL_CREATION)))]);

static DELETE_ACLS_REQUEST: Struct = Struct(&[f("filters", 0, ALL, arr(&st(&ACL_FILTER)))]);

static SASL_HANDSHAKE_REQUEST: Struct = Struct(&[f("mechanism", 0, ALL, STR)]);

static SASL_AUTHENTICATE_REQUEST: Struct = Struct(&[f("auth_bytes", 0, ALL, BYTES)]);

static SCRAM_USER_NAME: Struct = Struct(&[f("name", 0, ALL, STR)]);

static DESCRIBE_USER_SCRAM_CREDENTIALS_REQUEST: Struct =
    Struct(&[f("users", 0, ALL, narr(&st(&SCRAM_USER_NAME)))]);

static SCRAM_CREDENTIAL_DELETION: Struct =
    Struct(&[f("name", 0, ALL, STR), f("mechanism", 0, ALL, I8)]);

static SCRAM_CREDENTIAL_UPSERTION: Struct = Struct(&[
    f("name", 0, ALL, STR),
    f("mechanism", 0, ALL, I8),
    f("iterations", 0, ALL, I32),
    f("salt", 0, ALL, BYTES),
    f("salted_password", 0, ALL, BYTES),
]);

static ALTER_USER_SCRAM_CREDENTIALS_REQUEST: Struct = Struct(&[
    f("deletions", 0, ALL, arr(&st(&SCRAM_CREDENTIAL_DELETION))),
    f("upsertions", 0, ALL, arr(&st(&SCRAM_CREDENTIAL_UPSERTION))),
]);

static REASSIGNABLE_PARTITION: Struct = Struct(&[
    f("partition_index", 0, ALL, I32),
    f("replicas", 0, ALL, narr(&I32)),
]);

static REASSIGNABLE_TOPIC: Struct = Struct(&[
    f("name", 0, ALL, STR),
    f("partitions", 0, ALL, arr(&st(&REASSIGNABLE_PARTITION))),
]);

static ALTER_PARTITION_REASSIGNMENTS_REQUEST: Struct = Struct(&[
    f("timeout_ms", 0, ALL, I32),
    f("allow_replication_factor_change", 1, ALL, BOOL),
    f("topics", 0, ALL, arr(&st(&REASSIGNABLE_TOPIC))),
]);

static LIST_REASSIGNMENTS_TOPIC: Struct = Struct(&[
    f("name", 0, ALL, STR),
    f("partition_indexes", 0, ALL, arr(&I32)),
]);

static LIST_PARTITION_REASSIGNMENTS_REQUEST: Struct = Struct(&[
    f("timeout_ms", 0, ALL, I32),
    f("topics", 0, ALL, narr(&st(&LIST_REASSIGNMENTS_TOPIC))),
]);

static ELECT_LEADERS_TOPIC: Struct =
    Struct(&[f("topic", 0, ALL, STR), f("partitions", 0, ALL, arr(&I32))]);

static ELECT_LEADERS_REQUEST: Struct = Struct(&[
    f("election_type", 1, ALL, I8),
    f("topic_partitions", 0, ALL, narr(&st(&ELECT_LEADERS_TOPIC))),
    f("timeout_ms", 0, ALL, I32),
]);

static DESCRIBE_QUORUM_PARTITION: Struct = Struct(&[f("partition_index", 0, ALL, I32)]);

static DESCRIBE_QUORUM_TOPIC: Struct = Struct(&[
    f("topic_name", 0, ALL, STR),
    f("partitions", 0, ALL, arr(&st(&DESCRIBE_QUORUM_PARTITION))),
]);

static DESCRIBE_QUORUM_REQUEST: Struct =
    Struct(&[f("topics", 0, ALL, arr(&st(&DESCRIBE_QUORUM_TOPIC)))]);

static DESCRIBE_TOPIC_PARTITIONS_TOPIC: Struct = Struct(&[f("name", 0, ALL, STR)]);

static DESCRIBE_TOPIC_PARTITIONS_CURSOR: Struct = Struct(&[
    f("topic_name", 0, ALL, STR),
    f("partition_index", 0, ALL, I32),
]);

static DESCRIBE_TOPIC_PARTITIONS_REQUEST: Struct = Struct(&[
    f("topics", 0, ALL, arr(&st(&DESCRIBE_TOPIC_PARTITIONS_TOPIC))),
    f("response_partition_limit", 0, ALL, I32),
    f(
        "cursor",
        0,
        ALL,
        Kind::OptionStruct(&DESCRIBE_TOPIC_PARTITIONS_CURSOR),
    ),
]);

static API_VERSIONS_REQUEST: Struct = Struct(&[
    f("client_software_name", 3, ALL, STR),
    f("client_software_version", 3, ALL, STR),
]);

static METADATA_REQUEST_TOPIC: Struct =
    Struct(&[f("topic_id", 10, ALL, UUID), f("name", 0, ALL, NSTR)]);

static METADATA_REQUEST: Struct = Struct(&[
    f("topics", 0, ALL, narr(&st(&METADATA_REQUEST_TOPIC))),
    f("allow_auto_topic_creation", 4, ALL, BOOL),
    f("include_cluster_authorized_operations", 8, 10, BOOL),
    f("include_topic_authorized_operations", 8, ALL, BOOL),
]);

static PRODUCE_PARTITION_PRODUCE_DATA: Struct =
    Struct(&[f("index", 0, ALL, I32), f("records", 0, ALL, NBYTES)]);

static PRODUCE_TOPIC_PRODUCE_DATA: Struct = Struct(&[
    f("name", 0, 12, STR),
    f("topic_id", 13, ALL, UUID),
    f(
        "partition_data",
        0,
        ALL,
        arr(&st(&PRODUCE_PARTITION_PRODUCE_DATA)),
    ),
]);

static PRODUCE_REQUEST: Struct = Struct(&[
    f("transactional_id", 0, ALL, NSTR),
    f("acks", 0, ALL, I16),
    f("timeout_ms", 0, ALL, I32),
    f("topic_data", 0, ALL, arr(&st(&PRODUCE_TOPIC_PRODUCE_DATA))),
]);

static FETCH_PARTITION: Struct = Struct(&[
    f("partition", 0, ALL, I32),
    f("current_leader_epoch", 9, ALL, I32),
    f("fetch_offset", 0, ALL, I64),
    f("last_fetched_epoch", 12, ALL, I32),
    f("log_start_offset", 5, ALL, I64),
    f("partition_max_bytes", 0, ALL, I32),
    tag(0, "replica_directory_id", 17, ALL, UUID),
    tag(1, "high_watermark", 18, ALL, I64),
]);

static FETCH_TOPIC: Struct = Struct(&[
    f("topic", 0, 12, STR),
    f("topic_id", 13, ALL, UUID),
    f("partitions", 0, ALL, arr(&st(&FETCH_PARTITION))),
]);

static FETCH_FORGOTTEN_TOPIC: Struct = Struct(&[
    f("topic", 7, 12, STR),
    f("topic_id", 13, ALL, UUID),
    f("partitions", 7, ALL, arr(&I32)),
]);

static FETCH_REPLICA_STATE: Struct = Struct(&[
    f("replica_id", 15, ALL, I32),
    f("replica_epoch", 15, ALL, I64),
]);

static FETCH_REQUEST: Struct = Struct(&[
    f("replica_id", 0, 14, I32),
    f("max_wait_ms", 0, ALL, I32),
    f("min_bytes", 0, ALL, I32),
    f("max_bytes", 0, ALL, I32),
    f("isolation_level", 0, ALL, I8),
    f("session_id", 7, ALL, I32),
    f("session_epoch", 7, ALL, I32),
    f("topics", 0, ALL, arr(&st(&FETCH_TOPIC))),
    f(
        "forgotten_topics_data",
        7,
        ALL,
        arr(&st(&FETCH_FORGOTTEN_TOPIC)),
    ),
    f("rack_id", 11, ALL, STR),
    tag(0, "cluster_id", 0, ALL, NSTR),
    tag(1, "replica_state", 15, ALL, st(&FETCH_REPLICA_STATE)),
]);

static OFFSET_FOR_LEADER_PARTITION: Struct = Struct(&[
    f("partition", 0, ALL, I32),
    f("current_leader_epoch", 2, ALL, I32),
    f("leader_epoch", 0, ALL, I32),
]);

static OFFSET_FOR_LEADER_TOPIC: Struct = Struct(&[
    f("topic", 0, ALL, STR),
    f("partitions", 0, ALL, arr(&st(&OFFSET_FOR_LEADER_PARTITION))),
]);

static OFFSET_FOR_LEADER_EPOCH_REQUEST: Struct = Struct(&[
    f("replica_id", 3, ALL, I32),
    f("topics", 0, ALL, arr(&st(&OFFSET_FOR_LEADER_TOPIC))),
]);

static LIST_OFFSETS_PARTITION: Struct = Struct(&[
    f("partition_index", 0, ALL, I32),
    f("current_leader_epoch", 4, ALL, I32),
    f("timestamp", 0, ALL, I64),
]);

static LIST_OFFSETS_TOPIC: Struct = Struct(&[
    f("name", 0, ALL, STR),
    f("partitions", 0, ALL, arr(&st(&LIST_OFFSETS_PARTITION))),
]);

static LIST_OFFSETS_REQUEST: Struct = Struct(&[
    f("replica_id", 0, ALL, I32),
    f("isolation_level", 2, ALL, I8),
    f("topics", 0, ALL, arr(&st(&LIST_OFFSETS_TOPIC))),
    f("timeout_ms", 10, ALL, I32),
]);

static CREATE_TOPICS_CREATABLE_REPLICA_ASSIGNMENT: Struct = Struct(&[
    f("partition_index", 0, ALL, I32),
    f("broker_ids", 0, ALL, arr(&I32)),
]);

static CREATE_TOPICS_CREATABLE_TOPIC_CONFIG: Struct =
    Struct(&[f("name", 0, ALL, STR), f("value", 0, ALL, NSTR)]);

static CREATE_TOPICS_CREATABLE_TOPIC: Struct = Struct(&[
    f("name", 0, ALL, STR),
    f("num_partitions", 0, ALL, I32),
    f("replication_factor", 0, ALL, I16),
    f(
        "assignments",
        0,
        ALL,
        arr(&st(&CREATE_TOPICS_CREATABLE_REPLICA_ASSIGNMENT)),
    ),
    f(
        "configs",
        0,
        ALL,
        arr(&st(&CREATE_TOPICS_CREATABLE_TOPIC_CONFIG)),
    ),
]);

static CREATE_TOPICS_REQUEST: Struct = Struct(&[
    f("topics", 0, ALL, arr(&st(&CREATE_TOPICS_CREATABLE_TOPIC))),
    f("timeout_ms", 0, ALL, I32),
    f("validate_only", 0, ALL, BOOL),
]);

static DELETE_TOPICS_DELETE_TOPIC_STATE: Struct =
    Struct(&[f("name", 6, ALL, NSTR), f("topic_id", 6, ALL, UUID)]);

static DELETE_TOPICS_REQUEST: Struct = Struct(&[
    f(
        "topics",
        6,
        ALL,
        arr(&st(&DELETE_TOPICS_DELETE_TOPIC_STATE)),
    ),
    f("topic_names", 0, 5, arr(&STR)),
    f("timeout_ms", 0, ALL, I32),
]);

static CREATE_PARTITIONS_ASSIGNMENT: Struct = Struct(&[f("broker_ids", 0, ALL, arr(&I32))]);

static CREATE_PARTITIONS_TOPIC: Struct = Struct(&[
    f("name", 0, ALL, STR),
    f("count", 0, ALL, I32),
    f(
        "assignments",
        0,
        ALL,
        narr(&st(&CREATE_PARTITIONS_ASSIGNMENT)),
    ),
]);

static CREATE_PARTITIONS_REQUEST: Struct = Struct(&[
    f("topics", 0, ALL, arr(&st(&CREATE_PARTITIONS_TOPIC))),
    f("timeout_ms", 0, ALL, I32),
    f("validate_only", 0, ALL, BOOL),
]);

static DESCRIBE_CONFIGS_RESOURCE: Struct = Struct(&[
    f("resource_type", 0, ALL, I8),
    f("resource_name", 0, ALL, STR),
    f("configuration_keys", 0, ALL, narr(&STR)),
]);

static DESCRIBE_CONFIGS_REQUEST: Struct = Struct(&[
    f("resources", 0, ALL, arr(&st(&DESCRIBE_CONFIGS_RESOURCE))),
    f("include_synonyms", 0, ALL, BOOL),
    f("include_documentation", 3, ALL, BOOL),
]);

static ALTER_CONFIGS_ALTERABLE_CONFIG: Struct =
    Struct(&[f("name", 0, ALL, STR), f("value", 0, ALL, NSTR)]);

static ALTER_CONFIGS_RESOURCE: Struct = Struct(&[
    f("resource_type", 0, ALL, I8),
    f("resource_name", 0, ALL, STR),
    f("configs", 0, ALL, arr(&st(&ALTER_CONFIGS_ALTERABLE_CONFIG))),
]);

static ALTER_CONFIGS_REQUEST: Struct = Struct(&[
    f("resources", 0, ALL, arr(&st(&ALTER_CONFIGS_RESOURCE))),
    f("validate_only", 0, ALL, BOOL),
]);

static INCREMENTAL_ALTER_CONFIGS_ALTERABLE_CONFIG: Struct = Struct(&[
    f("name", 0, ALL, STR),
    f("config_operation", 0, ALL, I8),
    f("value", 0, ALL, NSTR),
]);

static INCREMENTAL_ALTER_CONFIGS_ALTER_CONFIGS_RESOURCE: Struct = Struct(&[
    f("resource_type", 0, ALL, I8),
    f("resource_name", 0, ALL, STR),
    f(
        "configs",
        0,
        ALL,
        arr(&st(&INCREMENTAL_ALTER_CONFIGS_ALTERABLE_CONFIG)),
    ),
]);

static INCREMENTAL_ALTER_CONFIGS_REQUEST: Struct = Struct(&[
    f(
        "resources",
        0,
        ALL,
        arr(&st(&INCREMENTAL_ALTER_CONFIGS_ALTER_CONFIGS_RESOURCE)),
    ),
    f("validate_only", 0, ALL, BOOL),
]);

static DELETE_RECORDS_PARTITION: Struct =
    Struct(&[f("partition_index", 0, ALL, I32), f("offset", 0, ALL, I64)]);

static DELETE_RECORDS_TOPIC: Struct = Struct(&[
    f("name", 0, ALL, STR),
    f("partitions", 0, ALL, arr(&st(&DELETE_RECORDS_PARTITION))),
]);

static DELETE_RECORDS_REQUEST: Struct = Struct(&[
    f("topics", 0, ALL, arr(&st(&DELETE_RECORDS_TOPIC))),
    f("timeout_ms", 0, ALL, I32),
]);

static DESCRIBE_CLUSTER_REQUEST: Struct = Struct(&[
    f("include_cluster_authorized_operations", 0, ALL, BOOL),
    f("endpoint_type", 1, ALL, I8),
    f("include_fenced_brokers", 2, ALL, BOOL),
]);

static DESCRIBE_LOG_DIRS_DESCRIBABLE_LOG_DIR_TOPIC: Struct =
    Struct(&[f("topic", 0, ALL, STR), f("partitions", 0, ALL, arr(&I32))]);

static DESCRIBE_LOG_DIRS_REQUEST: Struct = Struct(&[f(
    "topics",
    0,
    ALL,
    narr(&st(&DESCRIBE_LOG_DIRS_DESCRIBABLE_LOG_DIR_TOPIC)),
)]);

static FIND_COORDINATOR_REQUEST: Struct = Struct(&[
    f("key", 0, 3, STR),
    f("key_type", 1, ALL, I8),
    f("coordinator_keys", 4, ALL, arr(&STR)),
]);

static JOIN_GROUP_REQUEST_PROTOCOL: Struct =
    Struct(&[f("name", 0, ALL, STR), f("metadata", 0, ALL, BYTES)]);

static JOIN_GROUP_REQUEST: Struct = Struct(&[
    f("group_id", 0, ALL, STR),
    f("session_timeout_ms", 0, ALL, I32),
    f("rebalance_timeout_ms", 1, ALL, I32),
    f("member_id", 0, ALL, STR),
    f("group_instance_id", 5, ALL, NSTR),
    f("protocol_type", 0, ALL, STR),
    f("protocols", 0, ALL, arr(&st(&JOIN_GROUP_REQUEST_PROTOCOL))),
    f("reason", 8, ALL, NSTR),
]);

static SYNC_GROUP_REQUEST_ASSIGNMENT: Struct =
    Struct(&[f("member_id", 0, ALL, STR), f("assignment", 0, ALL, BYTES)]);

static SYNC_GROUP_REQUEST: Struct = Struct(&[
    f("group_id", 0, ALL, STR),
    f("generation_id", 0, ALL, I32),
    f("member_id", 0, ALL, STR),
    f("group_instance_id", 3, ALL, NSTR),
    f("protocol_type", 5, ALL, NSTR),
    f("protocol_name", 5, ALL, NSTR),
    f(
        "assignments",
        0,
        ALL,
        arr(&st(&SYNC_GROUP_REQUEST_ASSIGNMENT)),
    ),
]);

static HEARTBEAT_REQUEST: Struct = Struct(&[
    f("group_id", 0, ALL, STR),
    f("generation_id", 0, ALL, I32),
    f("member_id", 0, ALL, STR),
    f("group_instance_id", 3, ALL, NSTR),
]);

static LEAVE_GROUP_MEMBER_IDENTITY: Struct = Struct(&[
    f("member_id", 3, ALL, STR),
    f("group_instance_id", 3, ALL, NSTR),
    f("reason", 5, ALL, NSTR),
]);

static LEAVE_GROUP_REQUEST: Struct = Struct(&[
    f("group_id", 0, ALL, STR),
    f("member_id", 0, 2, STR),
    f("members", 3, ALL, arr(&st(&LEAVE_GROUP_MEMBER_IDENTITY))),
]);

static OFFSET_COMMIT_REQUEST_PARTITION: Struct = Struct(&[
    f("partition_index", 0, ALL, I32),
    f("committed_offset", 0, ALL, I64),
    f("committed_leader_epoch", 6, ALL, I32),
    f("committed_metadata", 0, ALL, NSTR),
]);

static OFFSET_COMMIT_REQUEST_TOPIC: Struct = Struct(&[
    f("name", 0, ALL, STR),
    f(
        "partitions",
        0,
        ALL,
        arr(&st(&OFFSET_COMMIT_REQUEST_PARTITION)),
    ),
]);

static OFFSET_COMMIT_REQUEST: Struct = Struct(&[
    f("group_id", 0, ALL, STR),
    f("generation_id_or_member_epoch", 0, ALL, I32),
    f("member_id", 0, ALL, STR),
    f("group_instance_id", 7, ALL, NSTR),
    f("retention_time_ms", 0, 4, I64),
    f("topics", 0, ALL, arr(&st(&OFFSET_COMMIT_REQUEST_TOPIC))),
]);

static OFFSET_FETCH_REQUEST_TOPIC: Struct = Struct(&[
    f("name", 0, 7, STR),
    f("partition_indexes", 0, 7, arr(&I32)),
]);

static OFFSET_FETCH_REQUEST_TOPICS: Struct = Struct(&[
    f("name", 8, ALL, STR),
    f("partition_indexes", 8, ALL, arr(&I32)),
]);

static OFFSET_FETCH_REQUEST_GROUP: Struct = Struct(&[
    f("group_id", 8, ALL, STR),
    f("member_id", 9, ALL, NSTR),
    f("member_epoch", 9, ALL, I32),
    f("topics", 8, ALL, narr(&st(&OFFSET_FETCH_REQUEST_TOPICS))),
]);

static OFFSET_FETCH_REQUEST: Struct = Struct(&[
    f("group_id", 0, 7, STR),
    f("topics", 0, 7, narr(&st(&OFFSET_FETCH_REQUEST_TOPIC))),
    f("groups", 8, ALL, arr(&st(&OFFSET_FETCH_REQUEST_GROUP))),
    f("require_stable", 7, ALL, BOOL),
]);

static LIST_GROUPS_REQUEST: Struct = Struct(&[
    f("states_filter", 4, ALL, arr(&STR)),
    f("types_filter", 5, ALL, arr(&STR)),
]);

static DESCRIBE_GROUPS_REQUEST: Struct = Struct(&[
    f("groups", 0, ALL, arr(&STR)),
    f("include_authorized_operations", 3, ALL, BOOL),
]);

static DELETE_GROUPS_REQUEST: Struct = Struct(&[f("groups_names", 0, ALL, arr(&STR))]);

static OFFSET_DELETE_REQUEST_PARTITION: Struct = Struct(&[f("partition_index", 0, ALL, I32)]);

static OFFSET_DELETE_REQUEST_TOPIC: Struct = Struct(&[
    f("name", 0, ALL, STR),
    f(
        "partitions",
        0,
        ALL,
        arr(&st(&OFFSET_DELETE_REQUEST_PARTITION)),
    ),
]);

static OFFSET_DELETE_REQUEST: Struct = Struct(&[
    f("group_id", 0, ALL, STR),
    f("topics", 0, ALL, arr(&st(&OFFSET_DELETE_REQUEST_TOPIC))),
]);

static CONSUMER_GROUP_HEARTBEAT_TOPIC_PARTITIONS: Struct = Struct(&[
    f("topic_id", 0, ALL, UUID),
    f("partitions", 0, ALL, arr(&I32)),
]);

static CONSUMER_GROUP_HEARTBEAT_REQUEST: Struct = Struct(&[
    f("group_id", 0, ALL, STR),
    f("member_id", 0, ALL, STR),
    f("member_epoch", 0, ALL, I32),
    f("instance_id", 0, ALL, NSTR),
    f("rack_id", 0, ALL, NSTR),
    f("rebalance_timeout_ms", 0, ALL, I32),
    f("subscribed_topic_names", 0, ALL, narr(&STR)),
    f("subscribed_topic_regex", 1, ALL, NSTR),
    f("server_assignor", 0, ALL, NSTR),
    f(
        "topic_partitions",
        0,
        ALL,
        narr(&st(&CONSUMER_GROUP_HEARTBEAT_TOPIC_PARTITIONS)),
    ),
]);

static CONSUMER_GROUP_DESCRIBE_REQUEST: Struct = Struct(&[
    f("group_ids", 0, ALL, arr(&STR)),
    f("include_authorized_operations", 0, ALL, BOOL),
]);

static INIT_PRODUCER_ID_REQUEST: Struct = Struct(&[
    f("transactional_id", 0, ALL, NSTR),
    f("transaction_timeout_ms", 0, ALL, I32),
    f("producer_id", 3, ALL, I64),
    f("producer_epoch", 3, ALL, I16),
]);

static ADD_PARTITIONS_TO_TXN_TOPIC: Struct =
    Struct(&[f("name", 0, ALL, STR), f("partitions", 0, ALL, arr(&I32))]);

/// One transaction of a batched (v4+) AddPartitionsToTxn.
static ADD_PARTITIONS_TO_TXN_TRANSACTION: Struct = Struct(&[
    f("transactional_id", 4, ALL, STR),
    f("producer_id", 4, ALL, I64),
    f("producer_epoch", 4, ALL, I16),
    f("verify_only", 4, ALL, BOOL),
    f("topics", 4, ALL, arr(&st(&ADD_PARTITIONS_TO_TXN_TOPIC))),
]);

/// v4+ carries only `transactions`; v0-3 only the four `v3_and_below_*` fields.
static ADD_PARTITIONS_TO_TXN_REQUEST: Struct = Struct(&[
    f(
        "transactions",
        4,
        ALL,
        arr(&st(&ADD_PARTITIONS_TO_TXN_TRANSACTION)),
    ),
    f("v3_and_below_transactional_id", 0, 3, STR),
    f("v3_and_below_producer_id", 0, 3, I64),
    f("v3_and_below_producer_epoch", 0, 3, I16),
    f(
        "v3_and_below_topics",
        0,
        3,
        arr(&st(&ADD_PARTITIONS_TO_TXN_TOPIC)),
    ),
]);

static ADD_OFFSETS_TO_TXN_REQUEST: Struct = Struct(&[
    f("transactional_id", 0, ALL, STR),
    f("producer_id", 0, ALL, I64),
    f("producer_epoch", 0, ALL, I16),
    f("group_id", 0, ALL, STR),
]);

static END_TXN_REQUEST: Struct = Struct(&[
    f("transactional_id", 0, ALL, STR),
    f("producer_id", 0, ALL, I64),
    f("producer_epoch", 0, ALL, I16),
    f("committed", 0, ALL, BOOL),
]);

static WRITABLE_TXN_MARKER_TOPIC: Struct = Struct(&[
    f("name", 0, ALL, STR),
    f("partition_indexes", 0, ALL, arr(&I32)),
]);

static WRITABLE_TXN_MARKER: Struct = Struct(&[
    f("producer_id", 0, ALL, I64),
    f("producer_epoch", 0, ALL, I16),
    f("transaction_result", 0, ALL, BOOL),
    f("topics", 0, ALL, arr(&st(&WRITABLE_TXN_MARKER_TOPIC))),
    f("coordinator_epoch", 0, ALL, I32),
]);

static WRITE_TXN_MARKERS_REQUEST: Struct =
    Struct(&[f("markers", 0, ALL, arr(&st(&WRITABLE_TXN_MARKER)))]);

static TXN_OFFSET_COMMIT_REQUEST_PARTITION: Struct = Struct(&[
    f("partition_index", 0, ALL, I32),
    f("committed_offset", 0, ALL, I64),
    f("committed_leader_epoch", 2, ALL, I32),
    f("committed_metadata", 0, ALL, NSTR),
]);

static TXN_OFFSET_COMMIT_REQUEST_TOPIC: Struct = Struct(&[
    f("name", 0, ALL, STR),
    f(
        "partitions",
        0,
        ALL,
        arr(&st(&TXN_OFFSET_COMMIT_REQUEST_PARTITION)),
    ),
]);

static TXN_OFFSET_COMMIT_REQUEST: Struct = Struct(&[
    f("transactional_id", 0, ALL, STR),
    f("group_id", 0, ALL, STR),
    f("producer_id", 0, ALL, I64),
    f("producer_epoch", 0, ALL, I16),
    f("generation_id", 3, ALL, I32),
    f("member_id", 3, ALL, STR),
    f("group_instance_id", 3, ALL, NSTR),
    f("topics", 0, ALL, arr(&st(&TXN_OFFSET_COMMIT_REQUEST_TOPIC))),
]);

static DESCRIBE_PRODUCERS_TOPIC_REQUEST: Struct = Struct(&[
    f("name", 0, ALL, STR),
    f("partition_indexes", 0, ALL, arr(&I32)),
]);

static DESCRIBE_PRODUCERS_REQUEST: Struct = Struct(&[f(
    "topics",
    0,
    ALL,
    arr(&st(&DESCRIBE_PRODUCERS_TOPIC_REQUEST)),
)]);

static DESCRIBE_TRANSACTIONS_REQUEST: Struct = Struct(&[f("transactional_ids", 0, ALL, arr(&STR))]);

static LIST_TRANSACTIONS_REQUEST: Struct = Struct(&[
    f("state_filters", 0, ALL, arr(&STR)),
    f("producer_id_filters", 0, ALL, arr(&I64)),
    f("duration_filter", 1, ALL, I64),
    f("transactional_id_pattern", 2, ALL, NSTR),
]);
