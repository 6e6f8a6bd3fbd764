//! Readiness, for a Kubernetes probe and `strom cluster health`: a node is ready when it has
//! caught up with the metadata log (a broker: registered and unfenced, which the controller
//! grants only then), its log directories are loaded and usable, and its Kafka listeners
//! accept connections. Liveness needs nothing more than an answer.

use serde::Serialize;

use crate::broker::Broker;

/// One readiness check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What is checked: `metadata`, `log_dirs`, `listeners`, `quorum`.
    pub name: &'static str,
    /// Whether it passes.
    pub ok: bool,
    /// Why, in a few words.
    pub detail: String,
}

/// Every check and whether all pass.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    /// True when every check passes.
    pub ready: bool,
    /// The checks.
    pub checks: Vec<Check>,
}

impl Readiness {
    fn of(checks: Vec<Check>) -> Readiness {
        Readiness {
            ready: checks.iter().all(|c| c.ok),
            checks,
        }
    }

    /// A node still starting: its broker (logs, registration) is not up yet.
    pub fn starting(what: &str) -> Readiness {
        Readiness::of(vec![Check {
            name: "log_dirs",
            ok: false,
            detail: format!("{what} is starting: loading its logs"),
        }])
    }
}

/// A broker's readiness.
pub fn broker(broker: &Broker) -> Readiness {
    let image = broker.image();
    let metadata = if broker.is_ready() {
        Check {
            name: "metadata",
            ok: true,
            detail: format!(
                "registered, unfenced, metadata applied to offset {}",
                image.offset
            ),
        }
    } else {
        Check {
            name: "metadata",
            ok: false,
            detail: "not yet registered and unfenced (catching up with the metadata log)".into(),
        }
    };
    let unusable: Vec<String> = broker
        .logs
        .log_dirs()
        .iter()
        .filter(|d| !usable(d))
        .map(|d| d.display().to_string())
        .collect();
    let log_dirs = Check {
        name: "log_dirs",
        ok: unusable.is_empty(),
        detail: if unusable.is_empty() {
            format!("{} partition logs loaded", broker.logs.logs().len())
        } else {
            format!("not writable: {}", unusable.join(", "))
        },
    };
    let listeners = Check {
        name: "listeners",
        ok: broker.is_serving(),
        detail: if broker.is_serving() {
            "accepting connections".into()
        } else {
            "not accepting connections".into()
        },
    };
    Readiness::of(vec![metadata, log_dirs, listeners])
}

/// A controller-only node's readiness: the quorum has a leader and this node has applied
/// what it knows committed.
pub fn controller(node: &strom_metadata::MetadataNode) -> Readiness {
    let status = node.quorum().status();
    let applied = node.image().offset + 1;
    let ok = status.leader_id >= 0 && applied >= status.high_watermark;
    Readiness::of(vec![Check {
        name: "quorum",
        ok,
        detail: if status.leader_id < 0 {
            "no quorum leader known".into()
        } else {
            format!(
                "leader {}, epoch {}, applied {applied} of {} committed",
                status.leader_id, status.leader_epoch, status.high_watermark
            )
        },
    }])
}

/// A directory this process may write, on a file system mounted writable (a disk that
/// failed is often remounted read-only).
fn usable(dir: &std::path::Path) -> bool {
    use rustix::fs::{access, statvfs, Access, StatVfsMountFlags};
    std::fs::metadata(dir).is_ok_and(|m| m.is_dir())
        && access(dir, Access::WRITE_OK).is_ok()
        && statvfs(dir).is_ok_and(|v| !v.f_flag.contains(StatVfsMountFlags::RDONLY))
}
