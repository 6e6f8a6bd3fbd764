//! The example applications' topologies, run by the `TopologyTestDriver` (no broker)
//! against hand-computed outputs: the page-view count's final results per window with
//! out-of-order and late events, the orders-payments join's window, and the click
//! enrichment against the users table.

#[allow(dead_code)]
#[path = "../examples/pageviews.rs"]
mod pageviews;

#[allow(dead_code)]
#[path = "../examples/orders_payments.rs"]
mod orders_payments;

#[allow(dead_code)]
#[path = "../examples/enrichment.rs"]
mod enrichment;

use std::collections::HashSet;

use strom_streams::{
    I64Serde, Json, Nullable, StringSerde, TimeWindowedSerde, TopologyTestDriver, Window, Windowed,
};

fn s(v: &str) -> String {
    v.to_string()
}

fn driver(topology: strom_streams::Topology, app: &str) -> TopologyTestDriver {
    TopologyTestDriver::new(topology, [("application.id", app)]).unwrap()
}

const MINUTE: i64 = 60_000;

/// `page` in the minute starting at `start`.
fn minute(page: &str, start: i64) -> Windowed<String> {
    Windowed::new(s(page), Window::new(start, start + MINUTE))
}

#[test]
fn pageviews_emit_one_final_count_per_page_and_minute() {
    let d = driver(pageviews::topology(), "pageviews");
    let views = d.input_topic(pageviews::INPUT, Nullable(StringSerde), StringSerde);
    let out = d.output_topic(
        pageviews::OUTPUT,
        TimeWindowedSerde::new(StringSerde, pageviews::WINDOW),
        Nullable(I64Serde),
    );
    let view = |user: Option<&str>, page: &str, ts: i64| {
        views.pipe(&user.map(s), &s(page), ts).unwrap();
    };
    let mut all = Vec::new();

    // Minute [0, 60 s): three views of /home, one of /about.
    view(Some("alice"), "/home", 1_000);
    view(Some("bob"), "/home", 30_000);
    view(Some("carol"), "/about", 45_000);
    // Minute [60 s, 120 s) starts; stream time 61 s.
    view(Some("alice"), "/home", 61_000);
    // Out of order but within the 10 s grace (the first minute closes at 70 s): counted.
    view(Some("dave"), "/home", 59_000);
    // An anonymous view (null key) counts too.
    view(None, "/about", 65_000);
    assert!(out.is_empty(), "nothing is final before the window closes");
    assert_eq!(d.dropped_records(), 0);

    // Stream time 70 s = end of the first minute + grace: its counts are final, each
    // with the timestamp of its latest view, in timestamp order.
    view(Some("erin"), "/home", 70_000);
    let first = out.read_records().unwrap();
    assert_eq!(
        first,
        vec![
            (minute("/about", 0), Some(1), 45_000),
            (minute("/home", 0), Some(3), 59_000),
        ]
    );
    all.extend(first);

    // After the grace period: dropped, and the first minute's counts stay as emitted.
    view(Some("frank"), "/home", 50_000);
    assert_eq!(d.dropped_records(), 1);
    assert!(out.is_empty());

    // More views of the second minute, then stream time passes 120 s + 10 s.
    view(Some("bob"), "/home", 119_999);
    view(Some("alice"), "/contact", 125_000);
    assert!(out.is_empty(), "the second minute closes at 130 s");
    view(Some("alice"), "/contact", 130_000);
    let second = out.read_records().unwrap();
    assert_eq!(
        second,
        vec![
            (minute("/about", MINUTE), Some(1), 65_000),
            (minute("/home", MINUTE), Some(3), 119_999),
        ]
    );
    all.extend(second);
    assert_eq!(d.dropped_records(), 1);

    // Exactly one result per page and window.
    let windows: HashSet<_> = all.iter().map(|(w, _, _)| w.clone()).collect();
    assert_eq!(windows.len(), all.len(), "{all:?}");
    // The third minute (/contact) is still open: nothing for it yet.
    assert!(out.is_empty());
}

#[test]
fn orders_join_payments_within_five_minutes() {
    use orders_payments::{Order, PaidOrder, Payment};
    const MIN: i64 = 60_000;

    let d = driver(orders_payments::topology(), "orders-payments");
    let orders = d.input_topic(orders_payments::ORDERS, StringSerde, Json::<Order>::new());
    let payments = d.input_topic(
        orders_payments::PAYMENTS,
        StringSerde,
        Json::<Payment>::new(),
    );
    let paid = d.output_topic(orders_payments::PAID, StringSerde, Json::<PaidOrder>::new());
    let unpaid = d.output_topic(orders_payments::UNPAID, StringSerde, Json::<Order>::new());
    let order = |id: &str, customer: &str, cents: u64, ts: i64| {
        let o = Order {
            customer: s(customer),
            amount_cents: cents,
        };
        orders.pipe(&s(id), &o, ts).unwrap();
    };
    let pay = |id: &str, cents: u64, method: &str, ts: i64| {
        let p = Payment {
            amount_cents: cents,
            method: s(method),
        };
        payments.pipe(&s(id), &p, ts).unwrap();
    };
    let paid_order = |customer: &str, cents: u64, paid: u64, method: &str| PaidOrder {
        customer: s(customer),
        amount_cents: cents,
        paid_cents: paid,
        method: s(method),
    };

    // o1 at 0, paid 2 minutes later: joined, with the payment's (later) timestamp.
    order("o1", "alice", 2_500, 0);
    assert!(paid.is_empty());
    pay("o1", 2_500, "card", 2 * MIN);
    assert_eq!(
        paid.read_records().unwrap(),
        vec![(s("o1"), paid_order("alice", 2_500, 2_500, "card"), 2 * MIN)]
    );

    // o2 at 1 minute; o3's payment comes 10 s before the order itself: joined too.
    order("o2", "bob", 1_000, MIN);
    pay("o3", 700, "cash", 3 * MIN);
    order("o3", "carol", 700, 3 * MIN + 10_000);
    assert_eq!(
        paid.read_records().unwrap(),
        vec![(
            s("o3"),
            paid_order("carol", 700, 700, "cash"),
            3 * MIN + 10_000
        )]
    );

    // Exactly 5 minutes apart still joins (the window's bounds are inclusive).
    order("o4", "dave", 300, 4 * MIN);
    pay("o4", 300, "card", 9 * MIN);
    assert_eq!(
        paid.read_records().unwrap(),
        vec![(s("o4"), paid_order("dave", 300, 300, "card"), 9 * MIN)]
    );
    // Stream time 9 min > 1 + 5 min: o2's window has closed unpaid; the others were paid.
    assert_eq!(
        unpaid.read_records().unwrap(),
        vec![(
            s("o2"),
            Order {
                customer: s("bob"),
                amount_cents: 1_000,
            },
            MIN
        )]
    );

    // o2's payment, 8 minutes after the order: outside the window, joins nothing.
    pay("o2", 1_000, "card", 9 * MIN);
    assert!(paid.is_empty());
    // A payment for an order never seen joins nothing either.
    pay("o9", 100, "card", 9 * MIN);
    assert!(paid.is_empty());

    // o5 at 10 min stays unpaid: reported once stream time passes 15 min, not before.
    order("o5", "erin", 50, 10 * MIN);
    pay("o1", 1, "refund-check", 15 * MIN);
    assert!(unpaid.is_empty(), "15 min is still in o5's window");
    assert!(paid.is_empty(), "o1's order is 15 minutes away");
    pay("o6", 1, "card", 15 * MIN + 1);
    assert_eq!(
        unpaid.read_records().unwrap(),
        vec![(
            s("o5"),
            Order {
                customer: s("erin"),
                amount_cents: 50,
            },
            10 * MIN
        )]
    );
    assert!(paid.is_empty());
}

#[test]
fn clicks_are_enriched_with_the_current_profile() {
    use enrichment::{Click, EnrichedClick, UserProfile};

    let d = driver(enrichment::topology(), "enrichment");
    let users = d.input_topic(enrichment::USERS, StringSerde, Json::<UserProfile>::new());
    let clicks = d.input_topic(enrichment::CLICKS, StringSerde, Json::<Click>::new());
    let out = d.output_topic(
        enrichment::ENRICHED,
        StringSerde,
        Json::<EnrichedClick>::new(),
    );
    let profile = |name: &str, region: &str| UserProfile {
        name: s(name),
        region: s(region),
    };
    let click = |user: &str, page: &str, ts: i64| {
        clicks.pipe(&s(user), &Click { page: s(page) }, ts).unwrap();
    };
    let enriched = |page: &str, p: Option<UserProfile>| EnrichedClick {
        page: s(page),
        profile: p,
    };

    users.pipe(&s("u1"), &profile("Alice", "eu"), 0).unwrap();
    click("u1", "/home", 10);
    // The profile changes: later clicks carry the new one.
    users.pipe(&s("u1"), &profile("Alice", "us"), 20).unwrap();
    click("u1", "/cart", 30);
    // An unknown user: the click is kept, without a profile.
    click("u2", "/home", 40);
    // A deleted user is unknown again.
    users.pipe_null(&s("u1"), 50).unwrap();
    click("u1", "/checkout", 60);
    // Table updates alone write nothing.
    users.pipe(&s("u2"), &profile("Bob", "apac"), 70).unwrap();
    click("u2", "/about", 80);

    assert_eq!(
        out.read_records().unwrap(),
        vec![
            (s("u1"), enriched("/home", Some(profile("Alice", "eu"))), 10),
            (s("u1"), enriched("/cart", Some(profile("Alice", "us"))), 30),
            (s("u2"), enriched("/home", None), 40),
            (s("u1"), enriched("/checkout", None), 60),
            (
                s("u2"),
                enriched("/about", Some(profile("Bob", "apac"))),
                80
            ),
        ]
    );
    // The JSON on the wire.
    click("u2", "/x", 90);
    let raw = d.read_raw(enrichment::ENRICHED);
    assert_eq!(raw.len(), 1);
    let json: serde_json::Value = serde_json::from_slice(raw[0].value.as_deref().unwrap()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"page": "/x", "profile": {"name": "Bob", "region": "apac"}})
    );
}
