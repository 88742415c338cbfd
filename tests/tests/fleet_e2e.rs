//! Two vigild instances sharing a real redis-server: a block added on one is enforced in the
//! other's XDP program; an instance that was down catches up when it starts (needs root).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use vigil_e2e::{netns::Netns, unique};
use vigil_testkit::config::Config;
use vigil_testkit::redis::Redis;
use vigil_testkit::vigild::Vigild;

fn blocked_cidrs(d: &Vigild) -> Vec<String> {
    d.ctl_json(&["block", "list"]).unwrap()["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cidr"].as_str().unwrap().to_owned())
        .collect()
}

/// Polls until `f` holds or `limit` passes; returns how long it took.
fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// vigild with XDP on `ns`'s host end, a member of the fleet `prefix` in `redis`; not started.
fn member(tag: &str, ns: &Netns, redis: &Redis, prefix: &str, box_id: &str) -> Vigild {
    let d = Vigild::with_xdp(tag, &ns.host_if).unwrap();
    d.configure(Config::new().fleet(redis.addr(), prefix, box_id))
        .unwrap();
    d
}

#[test]
fn blocks_reach_every_box_and_late_boxes_catch_up() {
    let redis = Redis::start().unwrap();
    let prefix = format!("vigil-e2e-{}", unique(8));
    let (ta, tb) = (unique(8), unique(9));
    let (na, nb) = (
        Netns::new(&ta, 108, 1).unwrap(),
        Netns::new(&tb, 109, 2).unwrap(),
    );
    let mut a = member(&ta, &na, &redis, &prefix, "box-a");
    let mut b = member(&tb, &nb, &redis, &prefix, "box-b");
    a.start().unwrap();
    b.start().unwrap();
    for d in [&a, &b] {
        let up = wait_for(Duration::from_secs(5), || {
            d.ctl_json(&["status"]).unwrap()["fleet"]["connected"] == true
        });
        assert!(up.is_some(), "fleet never connected: {}", d.log());
    }

    // A block added on A is dropped by B's XDP program.
    let intruder = nb.client_addrs[1].clone();
    assert!(nb.ping_from(&intruder, 1));
    a.ctl(&[
        "block",
        "add",
        &intruder,
        "--ttl",
        "10m",
        "--reason",
        "fleet e2e",
    ])
    .unwrap();
    let took = wait_for(Duration::from_secs(3), || {
        blocked_cidrs(&b).contains(&format!("{intruder}/32"))
    })
    .unwrap_or_else(|| panic!("block never reached B: {}", b.log()));
    eprintln!("fleet propagation A -> B took {took:?}");
    assert!(
        !nb.ping_from(&intruder, 2),
        "B did not drop the fleet-blocked source"
    );
    assert!(nb.ping_from(&nb.client_addrs[0], 1));
    let rule = &b.ctl_json(&["block", "list"]).unwrap()["rules"][0];
    assert_eq!(rule["reason"], "fleet e2e");
    let left = rule["expires_in_secs"].as_u64().unwrap();
    assert!((590..=600).contains(&left), "ttl not carried over: {left}");

    // Unblocking on B reaches A.
    b.ctl(&["block", "del", &intruder]).unwrap();
    assert!(wait_for(Duration::from_secs(3), || blocked_cidrs(&a).is_empty()).is_some());

    // B is down while A blocks; B catches up when it starts again.
    b.kill9();
    let _ = b.ctl(&["xdp", "detach"]);
    a.ctl(&["block", "add", "198.18.109.200"]).unwrap();
    a.ctl(&["block", "add", "2001:db8:f1ee::/48", "--ttl", "1h"])
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    b.start().unwrap();
    let caught = wait_for(Duration::from_secs(5), || {
        let l = blocked_cidrs(&b);
        l.contains(&"198.18.109.200/32".to_owned()) && l.contains(&"2001:db8:f1ee::/48".to_owned())
    });
    assert!(
        caught.is_some(),
        "B did not catch up: {:?}\n{}",
        blocked_cidrs(&b),
        b.log()
    );
}

#[test]
fn redis_outage_never_fails_a_local_block() {
    let mut redis = Redis::start().unwrap();
    let tag = unique(10);
    let ns = Netns::new(&tag, 110, 1).unwrap();
    let mut d = member(&tag, &ns, &redis, &format!("vigil-e2e-{tag}"), "solo");
    d.start().unwrap();
    redis.stop();
    // The block applies locally at once; sharing waits for Redis to come back.
    d.ctl(&["block", "add", &ns.client_addrs[0]]).unwrap();
    assert!(!ns.ping_from(&ns.client_addrs[0], 1));
    let down = wait_for(Duration::from_secs(5), || {
        let s = d.ctl_json(&["status"]).unwrap();
        s["fleet"]["connected"] == false && s["fleet"]["last_error"].is_string()
    });
    assert!(down.is_some(), "status never reported the outage");
}
