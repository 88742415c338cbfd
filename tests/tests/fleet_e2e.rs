//! vigild instances sharing a real redis-server: a block added on one is enforced in the
//! other's XDP program with the origin `fleet:<box>`; an instance that was down catches up when
//! it starts. On a Redis with an ACL user and TLS, events nobody trusted signed (the forged
//! PUBLISH of an intruder with Redis access, an unknown box, a replay, an unsigned entry in the
//! blocklist hash) are refused, logged and counted; a wrong password fails closed for fleet
//! writes while shared rate limits fall back locally (needs root).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use vigil_e2e::{netns::Netns, unique};
use vigil_testkit::config::Config;
use vigil_testkit::fleet::FleetKeys;
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

/// vigild with XDP on `ns`'s host end, a member of the fleet `prefix` in `redis` signing as
/// `box_id` with its key in `keys`; `extra` adds to the config; not started.
fn member_with(
    tag: &str,
    ns: &Netns,
    redis: &Redis,
    prefix: &str,
    keys: &FleetKeys,
    box_id: &str,
    extra: impl FnOnce(Config) -> Config,
) -> Vigild {
    let d = Vigild::with_xdp(tag, &ns.host_if).unwrap();
    d.configure(extra(Config::new().fleet(
        redis.url(),
        prefix,
        keys,
        box_id,
    )))
    .unwrap();
    d
}

fn member(
    tag: &str,
    ns: &Netns,
    redis: &Redis,
    prefix: &str,
    keys: &FleetKeys,
    box_id: &str,
) -> Vigild {
    member_with(tag, ns, redis, prefix, keys, box_id, |c| c)
}

fn wait_connected(d: &Vigild) {
    let up = wait_for(Duration::from_secs(10), || {
        d.ctl_json(&["status"]).unwrap()["fleet"]["connected"] == true
    });
    assert!(up.is_some(), "fleet never connected: {}", d.log());
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
    let keys = FleetKeys::new(&["box-a", "box-b"]).unwrap();
    let mut a = member(&ta, &na, &redis, &prefix, &keys, "box-a");
    let mut b = member(&tb, &nb, &redis, &prefix, &keys, "box-b");
    a.start().unwrap();
    b.start().unwrap();
    for d in [&a, &b] {
        wait_connected(d);
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
    assert_eq!(rule["fleet_box"], "box-a");
    let table = b.ctl(&["block", "list"]).unwrap();
    assert!(table.contains("fleet:box-a"), "{table}");
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
    let keys = FleetKeys::new(&["solo"]).unwrap();
    let mut d = member(
        &tag,
        &ns,
        &redis,
        &format!("vigil-e2e-{tag}"),
        &keys,
        "solo",
    );
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

/// A signed message as a box would send it, made by the test with `key` (PKCS#8 PEM of an
/// Ed25519 key) claiming to be `box_id`.
fn sign_as(key_pem_path: &std::path::Path, box_id: &str, prefix: &str, event: &str) -> String {
    use base64::{Engine as _, engine::general_purpose::STANDARD};
    let pem = std::fs::read_to_string(key_pem_path).unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = STANDARD.decode(b64).unwrap();
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(&der).unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let signed = serde_json::json!({
        "v": 1, "fleet": prefix, "box": box_id, "ts_ms": now_ms as u64,
        "nonce": format!("{:032x}", now_ms), "event": serde_json::from_str::<serde_json::Value>(event).unwrap(),
    })
    .to_string();
    let mut msg = b"vigil-fleet-v1\n".to_vec();
    msg.extend_from_slice(signed.as_bytes());
    let sig = STANDARD.encode(pair.sign(&msg).as_ref());
    serde_json::json!({ "signed": signed, "sig": sig }).to_string()
}

fn refused(d: &Vigild, reason: &str) -> u64 {
    d.ctl_json(&["status"]).unwrap()["fleet"]["events_refused"][reason]
        .as_u64()
        .unwrap_or(0)
}

/// A Redis with an ACL user for the boxes (password in a file), TLS only, and an admin.
fn secure_redis(dir: &std::path::Path, client_auth: bool) -> (Redis, std::path::PathBuf) {
    use vigil_testkit::pki::Ca;
    use vigil_testkit::redis::{RedisTls, Secure};
    let ca = Ca::new("fleet redis CA").unwrap();
    let ca_path = ca.write(&dir.join("redis-ca.pem")).unwrap();
    let server = ca
        .server(&["127.0.0.1"])
        .unwrap()
        .write(&dir.join("redis.pem"), &dir.join("redis.key"))
        .unwrap();
    let client = if client_auth {
        Some(
            ca.client("vigil-box")
                .unwrap()
                .write(&dir.join("client.pem"), &dir.join("client.key"))
                .unwrap(),
        )
    } else {
        None
    };
    let redis = Redis::start_secure(Secure {
        user: "vigil-box".into(),
        password: "fleet-pass-0451".into(),
        admin_password: "admin-pass-9931".into(),
        tls: Some(RedisTls {
            ca: ca_path.clone(),
            server,
            client,
        }),
    })
    .unwrap();
    (redis, ca_path)
}

#[test]
fn on_an_acl_tls_redis_only_signed_fresh_events_of_trusted_boxes_apply() {
    let dir = tempfile::tempdir().unwrap();
    let (redis, ca) = secure_redis(dir.path(), true);
    let pass = dir.path().join("fleet.pass");
    std::fs::write(&pass, "fleet-pass-0451\n").unwrap();
    let prefix = format!("vigil-sec-{}", unique(8));
    let (ta, tb) = (unique(12), unique(13));
    let (na, nb) = (
        Netns::new(&ta, 112, 1).unwrap(),
        Netns::new(&tb, 113, 3).unwrap(),
    );
    let keys = FleetKeys::new(&["box-a", "box-b"]).unwrap();
    let secure = |c: Config| {
        c.set("fleet.username", "vigil-box")
            .set("fleet.password_file", pass.to_str().unwrap())
            .set("fleet.ca_file", ca.to_str().unwrap())
            .set(
                "fleet.client_cert",
                dir.path().join("client.pem").to_str().unwrap(),
            )
            .set(
                "fleet.client_key",
                dir.path().join("client.key").to_str().unwrap(),
            )
    };
    let mut a = member_with(&ta, &na, &redis, &prefix, &keys, "box-a", secure);
    let mut b = member_with(&tb, &nb, &redis, &prefix, &keys, "box-b", secure);
    a.start().unwrap();
    b.start().unwrap();
    wait_connected(&a);
    wait_connected(&b);
    let st = b.ctl_json(&["status"]).unwrap();
    assert_eq!(st["fleet"]["tls"], true, "{st}");
    assert_eq!(st["fleet"]["user"], "vigil-box");
    assert!(
        st["fleet"]["redis"]
            .as_str()
            .unwrap()
            .starts_with("rediss://")
    );
    for d in [&a, &b] {
        let log = d.log();
        assert!(
            !log.contains("fleet-pass-0451"),
            "the password reached the log:\n{log}"
        );
    }

    // Without credentials Redis itself refuses the intruder.
    let victim = nb.client_addrs[0].clone();
    let forged = format!(
        r#"{{"op":"add","from":"attacker","block":{{"cidr":"{victim}/32","reason":"x","expires_unix":null,"auto":false}}}}"#
    );
    let channel = format!("{prefix}:events");
    let anon = redis
        .cli_as(Some(("", "")), &["PUBLISH", &channel, &forged])
        .unwrap();
    assert!(
        !anon.trim().starts_with(|c: char| c.is_ascii_digit()),
        "anonymous PUBLISH accepted: {anon}"
    );

    // An insider with Redis access publishes the issue's forged event: refused, counted, logged.
    let n = redis.cli(&["PUBLISH", &channel, &forged]).unwrap();
    assert_eq!(n.trim(), "2", "both boxes are subscribed: {n}");
    assert!(
        wait_for(Duration::from_secs(5), || refused(&b, "unsigned") >= 1).is_some(),
        "the forged event was not counted: {}",
        b.log()
    );
    assert!(b.log().contains("fleet: refused"), "{}", b.log());
    assert!(!blocked_cidrs(&b).contains(&format!("{victim}/32")));
    assert!(nb.ping_from(&victim, 1), "the forged block was applied");

    // Signed by a box the fleet does not list.
    let stranger = FleetKeys::new(&["box-x"]).unwrap();
    let add = |cidr: &str| {
        format!(
            r#"{{"op":"add","block":{{"cidr":"{cidr}","reason":"x","expires_unix":null,"auto":false}}}}"#
        )
    };
    // Signs as `claimed` with the stranger's key, publishes, waits for the refusal `why`.
    let forge = |claimed: &str, why: &str| {
        let msg = sign_as(
            &stranger.get("box-x").unwrap().key,
            claimed,
            &prefix,
            &add(&format!("{victim}/32")),
        );
        redis.cli(&["PUBLISH", &channel, &msg]).unwrap();
        assert!(
            wait_for(Duration::from_secs(5), || refused(&b, why) >= 1).is_some(),
            "no {why} refusal: {}",
            b.log()
        );
    };
    forge("box-x", "unknown_box");
    // A stranger's key under a trusted name.
    forge("box-a", "bad_signature");
    assert!(nb.ping_from(&victim, 1));

    // A genuine block from A applies on B as fleet:box-a; publishing the captured message
    // again (after B's operator removed the block) is a replay.
    let intruder = nb.client_addrs[1].clone();
    a.ctl(&["block", "add", &intruder, "--ttl", "10m"]).unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || blocked_cidrs(&b)
            .contains(&format!("{intruder}/32")))
        .is_some()
    );
    let hash = format!("{prefix}:blocklist");
    let captured = redis
        .cli(&["HGET", &hash, &format!("{intruder}/32")])
        .unwrap();
    let captured = captured.trim_end_matches('\n');
    assert!(captured.contains("\"sig\""), "{captured}");
    b.ctl(&["block", "del", &intruder]).unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || !blocked_cidrs(&b)
            .contains(&format!("{intruder}/32")))
        .is_some()
    );
    redis.cli(&["PUBLISH", &channel, captured]).unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || refused(&b, "replayed") >= 1).is_some(),
        "the replay was not refused: {}",
        b.log()
    );
    assert!(!blocked_cidrs(&b).contains(&format!("{intruder}/32")));

    // An unsigned entry written into the blocklist hash is refused at catch-up.
    redis
        .cli(&[
            "HSET",
            &hash,
            &format!("{victim}/32"),
            r#"{"cidr":"x","reason":"x","expires_unix":null,"auto":false}"#,
        ])
        .unwrap();
    b.kill9();
    let _ = b.ctl(&["xdp", "detach"]);
    b.start().unwrap();
    wait_connected(&b);
    assert!(wait_for(Duration::from_secs(5), || refused(&b, "unsigned") >= 1).is_some());
    assert!(!blocked_cidrs(&b).contains(&format!("{victim}/32")));
    assert!(nb.ping_from(&victim, 1));
    let metrics_free = b.ctl(&["status"]).unwrap();
    assert!(!metrics_free.contains("fleet-pass-0451"));
}

#[test]
fn a_wrong_password_fails_closed_for_fleet_writes_and_rate_limits_fall_back() {
    use std::io::{Read as _, Write as _};
    use vigil_e2e::upstream::Upstream;
    use vigil_testkit::config::RateLimit;
    use vigil_testkit::ports::free_port;

    let dir = tempfile::tempdir().unwrap();
    let (redis, ca) = secure_redis(dir.path(), false);
    let pass = dir.path().join("wrong.pass");
    std::fs::write(&pass, "not-the-password\n").unwrap();
    let tag = unique(14);
    let ns = Netns::new(&tag, 114, 1).unwrap();
    let prefix = format!("vigil-wrong-{tag}");
    let keys = FleetKeys::new(&["solo"]).unwrap();
    let up = Upstream::start().unwrap();
    let (https, http) = (free_port().unwrap(), free_port().unwrap());
    let mut d = Vigild::with_xdp(&tag, &ns.host_if).unwrap();
    let cfg = d
        .gateway_config("127.0.0.1", https, up.url())
        .unwrap()
        .http(format!("127.0.0.1:{http}"))
        .fleet(redis.url(), &prefix, &keys, "solo")
        .set("fleet.username", "vigil-box")
        .set("fleet.password_file", pass.to_str().unwrap())
        .set("fleet.ca_file", ca.to_str().unwrap())
        .rate_limit(RateLimit::new("per-ip", "client_ip", 1000, 1000).shared());
    d.configure(cfg).unwrap();
    d.start().unwrap();
    let err = wait_for(Duration::from_secs(10), || {
        let s = d.ctl_json(&["status"]).unwrap();
        s["fleet"]["connected"] == false
            && s["fleet"]["last_error"].as_str().is_some_and(|e| {
                let e = e.to_ascii_lowercase();
                e.contains("auth") || e.contains("wrongpass")
            })
    });
    assert!(
        err.is_some(),
        "{}\n{}",
        d.ctl(&["status"]).unwrap(),
        d.log()
    );
    // Shared rate limits decide locally: requests are answered.
    let s = d.ctl_json(&["status"]).unwrap();
    assert_eq!(
        s["fleet"]["rate_limits"]["backend"], "local-fallback",
        "{s}"
    );
    let mut c = std::net::TcpStream::connect(("127.0.0.1", http)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = c.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // A block applies locally, and nothing reaches Redis: fleet writes fail closed.
    d.ctl(&["block", "add", &ns.client_addrs[0]]).unwrap();
    assert!(!ns.ping_from(&ns.client_addrs[0], 1));
    std::thread::sleep(Duration::from_millis(1500));
    let stored = redis
        .cli(&["HLEN", &format!("{prefix}:blocklist")])
        .unwrap();
    assert_eq!(stored.trim(), "0");
    let log = d.log();
    assert!(!log.contains("not-the-password"), "{log}");
}
