//! KIP-848 reconciliation, simulated with members that behave as clients do (they adopt each
//! assignment they are sent and report what they own): no partition is ever held by two
//! members, and the group converges to a balanced assignment after joins and leaves.

use std::collections::{BTreeMap, HashMap};

use strom_coordinator::consumer_group::{ConsumerGroup, Heartbeat};
use strom_coordinator::{Assignment, TopicsView};

struct Client {
    id: String,
    epoch: i32,
    owned: Assignment,
}

fn topics() -> TopicsView {
    let mut t = HashMap::new();
    t.insert("a".to_string(), (uuid::Uuid::from_u128(1), 7));
    t.insert("b".to_string(), (uuid::Uuid::from_u128(2), 5));
    t
}

fn beat(g: &mut ConsumerGroup, c: &mut Client, now: i64, assignor: &str) {
    let r = g
        .heartbeat(
            Heartbeat {
                member_id: c.id.clone(),
                member_epoch: c.epoch,
                subscribed_topic_names: Some(vec!["a".into(), "b".into()]),
                server_assignor: Some(assignor.into()),
                owned: Some(c.owned.clone()),
                ..Default::default()
            },
            &topics(),
            45_000,
            1000,
            now,
        )
        .expect("heartbeat accepted");
    c.id = r.member_id;
    c.epoch = r.member_epoch;
    if let Some(a) = r.assignment {
        c.owned = a;
    }
}

fn check_exclusive(clients: &[Client]) {
    let mut seen = BTreeMap::new();
    for c in clients {
        for (t, ps) in &c.owned {
            for p in ps {
                if let Some(other) = seen.insert((*t, *p), c.id.clone()) {
                    panic!("{t}/{p} owned by {other} and {}", c.id);
                }
            }
        }
    }
}

fn run(assignor: &str) {
    let mut g = ConsumerGroup::default();
    let mut clients: Vec<Client> = Vec::new();
    let mut seed: u64 = 12345;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    for round in 0..8 {
        // Members join one by one (and one leaves in round 4); 12 partitions do not split
        // evenly over 5, 7 or 8 members, which checks the floor/ceiling shares.
        if round == 4 {
            let gone = clients.remove(1);
            let r = g.heartbeat(
                Heartbeat {
                    member_id: gone.id,
                    member_epoch: -1,
                    ..Default::default()
                },
                &topics(),
                45_000,
                1000,
                0,
            );
            assert_eq!(r.unwrap().member_epoch, -1);
        } else {
            clients.push(Client {
                id: String::new(),
                epoch: 0,
                owned: Assignment::new(),
            });
        }
        for _ in 0..200 {
            let i = next() % clients.len();
            beat(&mut g, &mut clients[i], 0, assignor);
            check_exclusive(&clients);
        }
        let sizes: Vec<usize> = clients
            .iter()
            .map(|c| c.owned.values().map(|s| s.len()).sum())
            .collect();
        assert_eq!(
            sizes.iter().sum::<usize>(),
            12,
            "every partition owned ({assignor}, {sizes:?})"
        );
        if assignor == "uniform" {
            let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(hi - lo <= 1, "balanced: {sizes:?}");
        }
        assert_eq!(g.state_name(), "Stable");
        assert!(clients.iter().all(|c| c.epoch == g.group_epoch));
    }
}

#[test]
fn uniform_reconciles_without_double_ownership_and_balances() {
    run("uniform");
}

#[test]
fn range_reconciles_without_double_ownership() {
    run("range");
}

#[test]
fn stale_epochs_are_fenced_and_unknown_members_refused() {
    let mut g = ConsumerGroup::default();
    let mut c = Client {
        id: String::new(),
        epoch: 0,
        owned: Assignment::new(),
    };
    beat(&mut g, &mut c, 0, "uniform");
    let bad = g.heartbeat(
        Heartbeat {
            member_id: c.id.clone(),
            member_epoch: c.epoch + 5,
            ..Default::default()
        },
        &topics(),
        45_000,
        1000,
        0,
    );
    assert_eq!(bad.unwrap_err(), 110, "FENCED_MEMBER_EPOCH");
    let unknown = g.heartbeat(
        Heartbeat {
            member_id: "nobody".into(),
            member_epoch: 3,
            ..Default::default()
        },
        &topics(),
        45_000,
        1000,
        0,
    );
    assert_eq!(unknown.unwrap_err(), 25, "UNKNOWN_MEMBER_ID");
    assert_eq!(
        g.validate_commit(&c.id, c.epoch - 1),
        Err(113),
        "STALE_MEMBER_EPOCH"
    );
    assert_eq!(g.validate_commit(&c.id, c.epoch), Ok(()));
    // Silence past the session timeout removes the member.
    assert!(g.on_timer(45_001));
    assert_eq!(g.state_name(), "Empty");
}

#[test]
fn regex_subscriptions_follow_the_topics_that_match() {
    let mut g = ConsumerGroup::default();
    let mut view = topics(); // "a" (7 partitions) and "b" (5)
    view.insert("other".into(), (uuid::Uuid::from_u128(3), 2));
    view.insert("__consumer_offsets".into(), (uuid::Uuid::from_u128(4), 50));
    let join = |g: &mut ConsumerGroup, view: &TopicsView, regex: &str| {
        g.heartbeat(
            Heartbeat {
                member_epoch: 0,
                subscribed_topic_regex: Some(regex.into()),
                ..Default::default()
            },
            view,
            45_000,
            1000,
            0,
        )
    };
    assert_eq!(
        join(&mut g, &view, "[").unwrap_err(),
        128,
        "INVALID_REGULAR_EXPRESSION"
    );
    let r = join(&mut g, &view, "a|b|__.*").unwrap();
    let owned: usize = r.assignment.unwrap().values().map(|s| s.len()).sum();
    assert_eq!(owned, 12, "a and b, not 'other', never internal topics");
    // A topic created later that matches is picked up at the next heartbeat.
    view.insert("b".into(), (uuid::Uuid::from_u128(2), 6));
    let r = g
        .heartbeat(
            Heartbeat {
                member_id: r.member_id,
                member_epoch: r.member_epoch,
                ..Default::default()
            },
            &view,
            45_000,
            1000,
            1,
        )
        .unwrap();
    let owned: usize = r.assignment.unwrap().values().map(|s| s.len()).sum();
    assert_eq!(owned, 13);
}

#[test]
fn a_member_that_does_not_revoke_in_its_rebalance_timeout_is_removed() {
    let mut g = ConsumerGroup::default();
    let hb = |g: &mut ConsumerGroup, id: &str, epoch: i32, owned: Option<Assignment>, now| {
        g.heartbeat(
            Heartbeat {
                member_id: id.into(),
                member_epoch: epoch,
                rebalance_timeout_ms: 10_000,
                subscribed_topic_names: Some(vec!["a".into(), "b".into()]),
                owned,
                ..Default::default()
            },
            &topics(),
            45_000,
            1000,
            now,
        )
        .unwrap()
    };
    let a = hb(&mut g, "", 0, None, 0);
    let all = a.assignment.clone().unwrap();
    let a = hb(&mut g, &a.member_id, a.member_epoch, Some(all.clone()), 100);
    let b = hb(&mut g, "", 0, None, 200);
    // a is told to give up half, and never confirms (it keeps reporting everything).
    let a2 = hb(&mut g, &a.member_id, a.member_epoch, Some(all.clone()), 300);
    assert!(
        a2.assignment
            .unwrap()
            .values()
            .map(|s| s.len())
            .sum::<usize>()
            < 12
    );
    let _ = hb(
        &mut g,
        &a.member_id,
        a.member_epoch,
        Some(all.clone()),
        5_000,
    );
    assert_eq!(g.members.len(), 2);
    assert!(g.next_deadline().unwrap() <= 300 + 10_000);
    assert!(
        g.on_timer(300 + 10_000),
        "removed at its rebalance timeout, before its session"
    );
    assert_eq!(g.members.len(), 1);
    assert!(g.members.contains_key(&b.member_id));
}
