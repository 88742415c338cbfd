//! Virtual patches against requests written as HTTP files: every field and test, all/any,
//! expiry, hits, limits, and the store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use vigil_patch::{
    Action, Patch, PatchError, PatchSet,
    http_file::FileRequest,
    rule::{format_time, unix_now},
    store::Store,
};

fn in_days(d: u64) -> String {
    format_time(unix_now() + d * 86400)
}

/// A patch from TOML, with a note and an expiry a week ahead unless the text sets them.
fn patch(toml_text: &str) -> Patch {
    let mut t: toml::Table = toml::from_str(toml_text).unwrap();
    t.entry("note").or_insert("SEC-1: test".into());
    t.entry("expires").or_insert(in_days(7).into());
    t.try_into().unwrap()
}

fn set(patches: &[Patch]) -> PatchSet {
    let checked = patches
        .iter()
        .map(|p| p.check(Some(unix_now())).unwrap())
        .collect();
    PatchSet::compile(checked, None).unwrap()
}

fn req(text: &str) -> FileRequest {
    FileRequest::parse(text.as_bytes()).unwrap()
}

fn ids(s: &PatchSet, r: &FileRequest) -> Vec<String> {
    s.evaluate(r, false).into_iter().map(|h| h.id).collect()
}

const ORDER: &str = "POST /api/v1/orders?q=union%20select%201&limit=500&tag=a&tag=b HTTP/1.1\r\n\
Host: api\r\nUser-Agent: sqlmap/1.7\r\nCookie: session=abc; debug=1\r\n\
Content-Type: application/json\r\n\r\n\
{\"item\": {\"name\": \"../../etc/passwd\", \"qty\": 12}, \"note\": \"x\"}";

#[test]
fn every_field_and_test() {
    let cases = [
        ("field = \"method\"\nequals = \"POST\"", true),
        ("field = \"method\"\nequals = \"GET\"", false),
        ("field = \"path\"\nglob = \"/api/*/orders\"", true),
        ("field = \"path\"\nglob = \"/api/*\"", false),
        ("field = \"path\"\nglob = \"/api/**\"", true),
        ("field = \"path\"\nprefix = \"/api/v1/\"", true),
        (
            "field = \"query:q\"\nregex = \"(?i)union\\\\s+select\"",
            true,
        ),
        ("field = \"query:limit\"\ngt = 100", true),
        ("field = \"query:limit\"\nlt = 100", false),
        ("field = \"query:tag\"\nequals = \"b\"", true),
        ("field = \"header:user-agent\"\ncontains = \"sqlmap\"", true),
        ("field = \"header:User-Agent\"\nprefix = \"sqlmap/\"", true),
        ("field = \"cookie:debug\"\nequals = \"1\"", true),
        ("field = \"cookie:session\"\nequals = \"1\"", false),
        ("field = \"json:/item/name\"\ncontains = \"../\"", true),
        ("field = \"json:/item/qty\"\neq = 12", true),
        ("field = \"json:/item/missing\"\ncontains = \"\"", false),
        ("field = \"body\"\nlonger_than = 20", true),
        ("field = \"body\"\nshorter_than = 20", false),
    ];
    let patches: Vec<Patch> = cases
        .iter()
        .enumerate()
        .map(|(i, (cond, _))| patch(&format!("id = \"p{i}\"\n[[when]]\n{cond}\n")))
        .collect();
    let s = set(&patches);
    let got = ids(&s, &req(ORDER));
    for (i, (cond, want)) in cases.iter().enumerate() {
        assert_eq!(got.contains(&format!("p{i}")), *want, "{cond}");
    }
}

#[test]
fn all_and_any() {
    let both = "[[when]]\nfield = \"method\"\nequals = \"POST\"\n[[when]]\nfield = \"query:q\"\ncontains = \"drop table\"\n";
    let s = set(&[
        patch(&format!("id = \"all\"\n{both}")),
        patch(&format!("id = \"any\"\nmatch = \"any\"\n{both}")),
    ]);
    assert_eq!(ids(&s, &req(ORDER)), vec!["any"]);
    let r = req("POST /x?q=drop%20table%20users HTTP/1.1\n\n");
    assert_eq!(ids(&s, &r), vec!["all", "any"]);
    assert!(ids(&s, &req("GET /x HTTP/1.1\n\n")).is_empty());
}

#[test]
fn expired_patches_stop_matching_and_hits_carry_over() {
    let live = patch("id = \"live\"\n[[when]]\nfield = \"method\"\nequals = \"POST\"\n");
    let mut gone = patch("id = \"gone\"\n[[when]]\nfield = \"method\"\nequals = \"POST\"\n");
    gone.expires = format_time(unix_now() - 10);
    // A new patch may not be born expired...
    assert!(
        gone.check(Some(unix_now()))
            .unwrap_err()
            .to_string()
            .contains("already past")
    );
    // ...but one stored earlier loads and is reported, without matching.
    let checked = vec![live.check(None).unwrap(), gone.check(None).unwrap()];
    let s = PatchSet::compile(checked.clone(), None).unwrap();
    assert_eq!(ids(&s, &req(ORDER)), vec!["live"]);
    assert_eq!(ids(&s, &req(ORDER)), vec!["live"]);
    assert!(
        s.evaluate(&req(ORDER), true).len() == 1,
        "dry runs are not counted"
    );
    let again = PatchSet::compile(checked, Some(&s)).unwrap();
    let hits: Vec<(String, u64)> = again
        .patches()
        .map(|(p, h)| {
            (
                p.patch.id.clone(),
                h.count.load(std::sync::atomic::Ordering::Relaxed),
            )
        })
        .collect();
    assert_eq!(hits, vec![("live".into(), 2), ("gone".into(), 0)]);
}

#[test]
fn refusals_name_the_patch_and_what_to_write() {
    let cases = [
        (
            "id = \"a b\"\n[[when]]\nfield = \"path\"\nprefix = \"/\"",
            "the id must be",
        ),
        (
            "id = \"x\"\nnote = \" \"\n[[when]]\nfield = \"path\"\nprefix = \"/\"",
            "note:",
        ),
        (
            "id = \"x\"\nexpires = \"tomorrow\"\n[[when]]\nfield = \"path\"\nprefix = \"/\"",
            "RFC 3339",
        ),
        (
            "id = \"x\"\n[[when]]\nfield = \"path\"\nprefix = \"/\"\nregex = \"a\"",
            "exactly one test",
        ),
        (
            "id = \"x\"\n[[when]]\nfield = \"params:id\"\nequals = \"1\"",
            "unknown field kind",
        ),
        (
            "id = \"x\"\n[[when]]\nfield = \"json:user\"\nequals = \"1\"",
            "JSON pointer",
        ),
        (
            "id = \"x\"\n[[when]]\nfield = \"path\"\nregex = \"(a\"",
            "does not compile",
        ),
        (
            "id = \"x\"\n[[when]]\nfield = \"path\"\nregex = \"\\\\w{1000}{1000}\"",
            "does not compile",
        ),
        (
            "id = \"x\"\nban_ttl = \"1h\"\n[[when]]\nfield = \"path\"\nprefix = \"/\"",
            "only for action",
        ),
        ("id = \"x\"\nwhen = []", "1 to 16 conditions"),
    ];
    for (text, want) in cases {
        let e = patch(text).check(Some(unix_now())).unwrap_err().to_string();
        assert!(e.contains(want), "{text}: {e}");
        assert!(e.starts_with("patch "), "{e}");
    }
    let mut far = patch("id = \"far\"\n[[when]]\nfield = \"path\"\nprefix = \"/\"\n");
    far.expires = in_days(400);
    assert!(
        far.check(Some(unix_now()))
            .unwrap_err()
            .to_string()
            .contains("366 days")
    );
}

#[test]
fn backtracking_bombs_run_in_linear_time() {
    // The classic catastrophic patterns: a backtracking engine takes exponential time on a
    // long run of `a` that fails at the end; this one answers at once.
    let s = set(&[
        patch("id = \"nested\"\n[[when]]\nfield = \"body\"\nregex = \"^(a+)+$\"\n"),
        patch("id = \"alt\"\n[[when]]\nfield = \"body\"\nregex = \"^(a|aa)+$\"\n"),
    ]);
    let mut body = "a".repeat(100_000);
    body.push('b');
    let r = req(&format!("POST /x HTTP/1.1\n\n{body}"));
    assert!(ids(&s, &r).is_empty());
    let r = req(&format!("POST /x HTTP/1.1\n\n{}", "a".repeat(100_000)));
    assert_eq!(ids(&s, &r), vec!["nested", "alt"]);
}

#[test]
fn a_thousand_patches_find_the_one_that_matches() {
    let patches: Vec<Patch> = (0..1000)
        .map(|i| {
            patch(&format!(
                "id = \"cve-{i}\"\naction = \"{}\"\n[[when]]\nfield = \"path\"\nequals = \"/v1/item/{i}\"\n[[when]]\nfield = \"query:debug\"\nprefix = \"on\"\n",
                if i % 2 == 0 { "block" } else { "log" }
            ))
        })
        .collect();
    let s = set(&patches);
    let hits = s.evaluate(&req("GET /v1/item/777?debug=on HTTP/1.1\n\n"), false);
    assert_eq!(hits.len(), 1);
    assert_eq!(
        (hits[0].id.as_str(), hits[0].action),
        ("cve-777", Action::Log)
    );
    assert!(
        s.evaluate(&req("GET /v1/item/777 HTTP/1.1\n\n"), false)
            .is_empty()
    );
}

#[test]
fn the_store_keeps_patches_and_refuses_a_damaged_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    assert!(store.load().unwrap().is_empty());
    let p = patch(
        "id = \"kept\"\naction = \"ban\"\nban_ttl = \"10m\"\n[[when]]\nfield = \"path\"\nprefix = \"/admin\"\n",
    );
    store.save(std::slice::from_ref(&p)).unwrap();
    assert_eq!(store.load().unwrap(), vec![p]);
    std::fs::write(store.path(), "{\"version\": 1, \"patches\": [{\"id\": ").unwrap();
    let e = store.load().unwrap_err();
    assert!(matches!(e, PatchError::File { .. }), "{e}");
    assert!(e.to_string().contains("patches.json"), "{e}");
}

#[test]
fn request_files_decode_queries_and_refuse_what_is_not_a_request() {
    let r = req("GET /s?q=a%2Bb+c&x HTTP/1.1\nCookie: k=v\n\n");
    let s = set(&[
        patch("id = \"q\"\n[[when]]\nfield = \"query:q\"\nequals = \"a+b c\"\n"),
        patch("id = \"x\"\n[[when]]\nfield = \"query:x\"\nequals = \"\"\n"),
    ]);
    assert_eq!(ids(&s, &r), vec!["q", "x"]);
    assert!(
        FileRequest::parse(b"hello\n\n")
            .unwrap_err()
            .contains("request line")
    );
    assert!(
        FileRequest::parse(b"POST / HTTP/1.1\nContent-Type: application/json\n\n{bad")
            .unwrap_err()
            .contains("does not parse")
    );
    assert!(
        FileRequest::parse(b"GET / HTTP/1.1\nno colon\n\n")
            .unwrap_err()
            .contains("no ':'")
    );
}
