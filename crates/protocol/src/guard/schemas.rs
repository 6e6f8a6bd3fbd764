//! The request layouts [`super::check_request`] walks, per Kafka's message specs: each field
//! with the versions it exists in. Tagged fields are not listed (the walker skips tagged
//! sections by size). Only requests Strom serves are here; a new API starts with its schema.

/// How a field is encoded (compact forms in flexible versions are handled by the walker).
#[derive(Debug)]
pub(crate) enum Kind {
    /// A fixed-width value: int8/16/32/64, bool, uuid, float64.
    Fixed(usize),
    /// A string (i16 length, or compact).
    Str,
    /// Bytes or records (i32 length, or compact).
    Bytes,
    /// An array (i32 count, or compact) of the inner kind.
    Array(&'static Kind),
    /// A nested struct (with its own tagged section in flexible versions).
    Struct(&'static [Field]),
}

/// One field and the versions (inclusive) it is present in.
#[derive(Debug)]
pub(crate) struct Field {
    pub name: &'static str,
    pub min: i16,
    pub max: i16,
    pub kind: Kind,
}

/// A request type.
#[derive(Debug)]
pub(crate) struct Message {
    pub api_key: i16,
    pub min_version: i16,
    pub max_version: i16,
    /// First flexible version (i16::MAX if none).
    pub flexible_from: i16,
    pub fields: &'static [Field],
}

const ALL: i16 = i16::MAX;
const I8: Kind = Kind::Fixed(1);
const I16: Kind = Kind::Fixed(2);
const I32: Kind = Kind::Fixed(4);
const I64: Kind = Kind::Fixed(8);
const BOOL: Kind = Kind::Fixed(1);
const UUID: Kind = Kind::Fixed(16);

const fn f(name: &'static str, min: i16, max: i16, kind: Kind) -> Field {
    Field {
        name,
        min,
        max,
        kind,
    }
}

const fn arr(of: &'static Kind) -> Kind {
    Kind::Array(of)
}

const fn st(fields: &'static [Field]) -> Kind {
    Kind::Struct(fields)
}

static API_VERSIONS: Message = Message {
    api_key: 18,
    min_version: 0,
    max_version: 4,
    flexible_from: 3,
    fields: &[
        f("client_software_name", 3, ALL, Kind::Str),
        f("client_software_version", 3, ALL, Kind::Str),
    ],
};

static METADATA: Message = Message {
    api_key: 3,
    min_version: 0,
    max_version: 13,
    flexible_from: 9,
    fields: &[
        f(
            "topics",
            0,
            ALL,
            arr(&st(&[
                f("topic_id", 10, ALL, UUID),
                f("name", 0, ALL, Kind::Str),
            ])),
        ),
        f("allow_auto_topic_creation", 4, ALL, BOOL),
        f("include_cluster_authorized_operations", 8, 10, BOOL),
        f("include_topic_authorized_operations", 8, ALL, BOOL),
    ],
};

static PRODUCE: Message = Message {
    api_key: 0,
    min_version: 3,
    max_version: 13,
    flexible_from: 9,
    fields: &[
        f("transactional_id", 0, ALL, Kind::Str),
        f("acks", 0, ALL, I16),
        f("timeout_ms", 0, ALL, I32),
        f(
            "topic_data",
            0,
            ALL,
            arr(&st(&[
                f("name", 0, 12, Kind::Str),
                f("topic_id", 13, ALL, UUID),
                f(
                    "partition_data",
                    0,
                    ALL,
                    arr(&st(&[
                        f("index", 0, ALL, I32),
                        f("records", 0, ALL, Kind::Bytes),
                    ])),
                ),
            ])),
        ),
    ],
};

static FETCH: Message = Message {
    api_key: 1,
    min_version: 4,
    max_version: 18,
    flexible_from: 12,
    fields: &[
        f("replica_id", 0, 14, I32),
        f("max_wait_ms", 0, ALL, I32),
        f("min_bytes", 0, ALL, I32),
        f("max_bytes", 3, ALL, I32),
        f("isolation_level", 4, ALL, I8),
        f("session_id", 7, ALL, I32),
        f("session_epoch", 7, ALL, I32),
        f(
            "topics",
            0,
            ALL,
            arr(&st(&[
                f("topic", 0, 12, Kind::Str),
                f("topic_id", 13, ALL, UUID),
                f(
                    "partitions",
                    0,
                    ALL,
                    arr(&st(&[
                        f("partition", 0, ALL, I32),
                        f("current_leader_epoch", 9, ALL, I32),
                        f("fetch_offset", 0, ALL, I64),
                        f("last_fetched_epoch", 12, ALL, I32),
                        f("log_start_offset", 5, ALL, I64),
                        f("partition_max_bytes", 0, ALL, I32),
                    ])),
                ),
            ])),
        ),
        f(
            "forgotten_topics_data",
            7,
            ALL,
            arr(&st(&[
                f("topic", 7, 12, Kind::Str),
                f("topic_id", 13, ALL, UUID),
                f("partitions", 7, ALL, arr(&I32)),
            ])),
        ),
        f("rack_id", 11, ALL, Kind::Str),
    ],
};

static LIST_OFFSETS: Message = Message {
    api_key: 2,
    min_version: 1,
    max_version: 10,
    flexible_from: 6,
    fields: &[
        f("replica_id", 0, ALL, I32),
        f("isolation_level", 2, ALL, I8),
        f(
            "topics",
            0,
            ALL,
            arr(&st(&[
                f("name", 0, ALL, Kind::Str),
                f(
                    "partitions",
                    0,
                    ALL,
                    arr(&st(&[
                        f("partition_index", 0, ALL, I32),
                        f("current_leader_epoch", 4, ALL, I32),
                        f("timestamp", 0, ALL, I64),
                    ])),
                ),
            ])),
        ),
        f("timeout_ms", 10, ALL, I32),
    ],
};

static CREATE_TOPICS: Message = Message {
    api_key: 19,
    min_version: 2,
    max_version: 7,
    flexible_from: 5,
    fields: &[
        f(
            "topics",
            0,
            ALL,
            arr(&st(&[
                f("name", 0, ALL, Kind::Str),
                f("num_partitions", 0, ALL, I32),
                f("replication_factor", 0, ALL, I16),
                f(
                    "assignments",
                    0,
                    ALL,
                    arr(&st(&[
                        f("partition_index", 0, ALL, I32),
                        f("broker_ids", 0, ALL, arr(&I32)),
                    ])),
                ),
                f(
                    "configs",
                    0,
                    ALL,
                    arr(&st(&[
                        f("name", 0, ALL, Kind::Str),
                        f("value", 0, ALL, Kind::Str),
                    ])),
                ),
            ])),
        ),
        f("timeout_ms", 0, ALL, I32),
        f("validate_only", 1, ALL, BOOL),
    ],
};

static DELETE_TOPICS: Message = Message {
    api_key: 20,
    min_version: 1,
    max_version: 6,
    flexible_from: 4,
    fields: &[
        f(
            "topics",
            6,
            ALL,
            arr(&st(&[
                f("name", 6, ALL, Kind::Str),
                f("topic_id", 6, ALL, UUID),
            ])),
        ),
        f("topic_names", 0, 5, arr(&Kind::Str)),
        f("timeout_ms", 0, ALL, I32),
    ],
};

static CREATE_PARTITIONS: Message = Message {
    api_key: 37,
    min_version: 0,
    max_version: 3,
    flexible_from: 2,
    fields: &[
        f(
            "topics",
            0,
            ALL,
            arr(&st(&[
                f("name", 0, ALL, Kind::Str),
                f("count", 0, ALL, I32),
                f(
                    "assignments",
                    0,
                    ALL,
                    arr(&st(&[f("broker_ids", 0, ALL, arr(&I32))])),
                ),
            ])),
        ),
        f("timeout_ms", 0, ALL, I32),
        f("validate_only", 0, ALL, BOOL),
    ],
};

static DESCRIBE_CONFIGS: Message = Message {
    api_key: 32,
    min_version: 1,
    max_version: 4,
    flexible_from: 4,
    fields: &[
        f(
            "resources",
            0,
            ALL,
            arr(&st(&[
                f("resource_type", 0, ALL, I8),
                f("resource_name", 0, ALL, Kind::Str),
                f("configuration_keys", 0, ALL, arr(&Kind::Str)),
            ])),
        ),
        f("include_synonyms", 1, ALL, BOOL),
        f("include_documentation", 3, ALL, BOOL),
    ],
};

static ALTER_CONFIGS: Message = Message {
    api_key: 33,
    min_version: 0,
    max_version: 2,
    flexible_from: 2,
    fields: &[
        f(
            "resources",
            0,
            ALL,
            arr(&st(&[
                f("resource_type", 0, ALL, I8),
                f("resource_name", 0, ALL, Kind::Str),
                f(
                    "configs",
                    0,
                    ALL,
                    arr(&st(&[
                        f("name", 0, ALL, Kind::Str),
                        f("value", 0, ALL, Kind::Str),
                    ])),
                ),
            ])),
        ),
        f("validate_only", 0, ALL, BOOL),
    ],
};

static INCREMENTAL_ALTER_CONFIGS: Message = Message {
    api_key: 44,
    min_version: 0,
    max_version: 1,
    flexible_from: 1,
    fields: &[
        f(
            "resources",
            0,
            ALL,
            arr(&st(&[
                f("resource_type", 0, ALL, I8),
                f("resource_name", 0, ALL, Kind::Str),
                f(
                    "configs",
                    0,
                    ALL,
                    arr(&st(&[
                        f("name", 0, ALL, Kind::Str),
                        f("config_operation", 0, ALL, I8),
                        f("value", 0, ALL, Kind::Str),
                    ])),
                ),
            ])),
        ),
        f("validate_only", 0, ALL, BOOL),
    ],
};

static DELETE_RECORDS: Message = Message {
    api_key: 21,
    min_version: 0,
    max_version: 2,
    flexible_from: 2,
    fields: &[
        f(
            "topics",
            0,
            ALL,
            arr(&st(&[
                f("name", 0, ALL, Kind::Str),
                f(
                    "partitions",
                    0,
                    ALL,
                    arr(&st(&[
                        f("partition_index", 0, ALL, I32),
                        f("offset", 0, ALL, I64),
                    ])),
                ),
            ])),
        ),
        f("timeout_ms", 0, ALL, I32),
    ],
};

static DESCRIBE_CLUSTER: Message = Message {
    api_key: 60,
    min_version: 0,
    max_version: 2,
    flexible_from: 0,
    fields: &[
        f("include_cluster_authorized_operations", 0, ALL, BOOL),
        f("endpoint_type", 1, ALL, I8),
        f("include_fenced_brokers", 2, ALL, BOOL),
    ],
};

static DESCRIBE_LOG_DIRS: Message = Message {
    api_key: 35,
    min_version: 1,
    max_version: 4,
    flexible_from: 2,
    fields: &[f(
        "topics",
        0,
        ALL,
        arr(&st(&[
            f("topic", 0, ALL, Kind::Str),
            f("partitions", 0, ALL, arr(&I32)),
        ])),
    )],
};

static MESSAGES: &[&Message] = &[
    &PRODUCE,
    &FETCH,
    &LIST_OFFSETS,
    &METADATA,
    &API_VERSIONS,
    &CREATE_TOPICS,
    &DELETE_TOPICS,
    &DELETE_RECORDS,
    &DESCRIBE_CONFIGS,
    &ALTER_CONFIGS,
    &DESCRIBE_LOG_DIRS,
    &CREATE_PARTITIONS,
    &INCREMENTAL_ALTER_CONFIGS,
    &DESCRIBE_CLUSTER,
];

/// The keys of [`MESSAGES`], in the same order.
pub(crate) static KEYS: &[i16] = &[0, 1, 2, 3, 18, 19, 20, 21, 32, 33, 35, 37, 44, 60];

pub(crate) fn message(api_key: i16) -> Option<&'static Message> {
    MESSAGES.iter().copied().find(|m| m.api_key == api_key)
}
