//! What virtual patches and injection detection cost per request, in process: the patch set
//! compiled with 0, 10, 100, 1,000 and 10,000 patches evaluated on requests none of them match
//! (the common case, and the worst: every field's set is run), against the empty set in the same
//! run; and the detector run over every value the gateway's detection stage inspects. With
//! `--http`, the gateway with patches and detection against nginx + ModSecurity + CRS over
//! HTTPS (`http.rs`). Writes the JSON (`--out`) and an SVG plot beside it (same name, `.svg`).

mod http;

use std::{
    hint::black_box,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use clap::Parser;
use serde::Serialize;
use vigil_patch::{
    Patch, PatchSet,
    http_file::FileRequest,
    rule::{format_time, unix_now},
};

#[derive(Parser)]
#[command(
    name = "vigil-perf-waf",
    about = "Virtual-patch and injection-detection cost per request, against the empty set"
)]
struct Args {
    /// Patch counts to measure (the empty set is always measured first).
    #[arg(long, value_delimiter = ',', default_values_t = [10usize, 100, 1_000, 10_000])]
    counts: Vec<usize>,
    /// Rounds per case (the median is reported).
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// Time per round.
    #[arg(long, default_value_t = 0.3)]
    seconds: f64,
    /// Exit with status 2 when a step up to 1,000 patches adds 1 us or more per request.
    #[arg(long)]
    check: bool,
    #[arg(long, default_value_os_t = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../results/waf.json"))]
    out: PathBuf,
    /// Also the HTTPS comparison with nginx + ModSecurity + CRS (needs nginx, its ModSecurity
    /// module, the CRS and wrk: scripts/setup.sh installs them).
    #[arg(long)]
    http: bool,
    /// Patches the gateway carries in the HTTPS comparison.
    #[arg(long, default_value_t = 1_000)]
    http_patches: usize,
    /// Rounds (servers and requests alternate inside each) and seconds per run.
    #[arg(long, default_value_t = 3)]
    http_rounds: usize,
    #[arg(long, default_value_t = 8)]
    http_seconds: u32,
    /// wrk connections.
    #[arg(long, default_value_t = 16)]
    conns: u32,
    /// CPU of the load generator, and of every server.
    #[arg(long, default_value_t = 0)]
    generator_cpu: usize,
    #[arg(long, default_value_t = 1)]
    server_cpu: usize,
    /// Internal: serve the gateway with this config (the harness's child).
    #[arg(long, hide = true)]
    serve_gateway: Option<PathBuf>,
    #[arg(long, hide = true, default_value_t = 0)]
    serve_patches: usize,
}

/// A benign GET with the headers a browser-less API client sends.
const GET: &str = "GET /api/orders/8812?sort=-created&q=running%20shoes&page=2&fields=id,total HTTP/1.1\r\n\
Host: api.example.com\r\nUser-Agent: shop-app/4.2.1 (Android 14)\r\nAccept: application/json\r\n\
Accept-Language: en-GB,en;q=0.8\r\nAuthorization: Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1LTQyIn0.c2ln\r\n\
Cookie: session=8f14e45fceea167a5a36dedd4bea2543; theme=dark\r\nX-Request-Id: 5d1c2f0a\r\n\r\n";

/// The benign POST's 1 KiB JSON body.
fn post_body() -> String {
    let items: Vec<String> = (0..8)
        .map(|i| {
            format!(
                r#"{{"sku":"SKU-{:05}","name":"Trail shoe, size {}","qty":{},"price":"{}.99","note":"gift wrap, please"}}"#,
                1000 + i,
                38 + i,
                1 + i % 3,
                40 + i
            )
        })
        .collect();
    format!(
        r#"{{"customer":{{"id":"u-42","email":"ada@example.com"}},"items":[{}],"ship_to":{{"street":"1 Main St","city":"Springfield","zip":"12345"}}}}"#,
        items.join(",")
    )
}

/// A benign POST with a 1 KiB JSON body.
fn post() -> String {
    let body = post_body();
    format!(
        "POST /api/orders HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: shop-app/4.2.1\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// `n` patches of the shapes operators write (a parameter, a header, a path, a JSON value, a
/// cookie, a body fragment), none of which the benchmark requests match.
fn patches(n: usize) -> Result<PatchSet> {
    let expires = format_time(unix_now() + 86_400);
    let mut checked = Vec::with_capacity(n);
    for i in 0..n {
        let (field, test, value) = match i % 6 {
            0 => (
                format!("query:q{}", i % 40),
                "regex",
                format!(r"(?i)union\s+select.*from\s+t{i}\b"),
            ),
            1 => (
                "header:x-api-version".into(),
                "equals",
                format!("legacy-{i}"),
            ),
            2 => ("path".into(), "prefix", format!("/internal/v{i}/")),
            3 => ("json:/items/0/sku".into(), "equals", format!("EXPLOIT-{i}")),
            4 => ("cookie:session".into(), "prefix", format!("../{i}")),
            _ => ("body".into(), "contains", format!("<!ENTITY x{i} SYSTEM")),
        };
        let patch: Patch = serde_json::from_value(serde_json::json!({
            "id": format!("SEC-{i}"),
            "note": "benchmark",
            "expires": expires,
            "action": "block",
            "when": [{"field": field, test: value}],
        }))?;
        checked.push(patch.check(Some(unix_now()))?);
    }
    Ok(PatchSet::compile(checked, None)?)
}

/// Median nanoseconds per call of `f` over `rounds` rounds of `seconds` each.
fn measure(rounds: usize, seconds: f64, mut f: impl FnMut()) -> (f64, Vec<f64>) {
    let per_round = Duration::from_secs_f64(seconds);
    // Warm-up.
    let start = Instant::now();
    while start.elapsed() < per_round / 4 {
        f();
    }
    let mut all: Vec<f64> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < per_round {
                for _ in 0..64 {
                    f();
                }
                n += 64;
            }
            start.elapsed().as_nanos() as f64 / n as f64
        })
        .collect();
    let shown = all.clone();
    all.sort_by(f64::total_cmp);
    (all[all.len() / 2], shown)
}

#[derive(Serialize)]
struct Case {
    request: &'static str,
    patches: usize,
    ns_per_request: f64,
    /// Over the empty set, same request, same run.
    added_ns: f64,
    rounds_ns: Vec<f64>,
}

#[derive(Serialize)]
struct Step {
    request: &'static str,
    from: usize,
    to: usize,
    added_ns: f64,
    /// The target: under 1 us per step up to 1,000 patches.
    target_ns: Option<f64>,
    met: Option<bool>,
}

#[derive(Serialize)]
struct Report {
    machine: serde_json::Value,
    patch_cost: Vec<Case>,
    steps: Vec<Step>,
    /// The detector over every value the detection stage inspects on each request.
    detection_ns: Vec<(&'static str, f64)>,
    /// The HTTPS comparison (`--http`).
    #[serde(skip_serializing_if = "Option::is_none")]
    http: Option<http::Report>,
}

/// The plot: patch cost per request by patch count, then (with `--http`) requests/s and p99 of
/// the gateway against nginx + ModSecurity + CRS and plain nginx.
fn plot(r: &Report, args: &Args) -> String {
    use vigil_testkit::load::spread;
    use vigil_testkit::plot::{Bar, HttpCase, Panel, http_panels, svg};
    let mut panels = vec![Panel {
        title: "virtual patches: ns per request, none matching (median; whisker: rounds)".into(),
        bars: r
            .patch_cost
            .iter()
            .map(|c| Bar {
                label: format!(
                    "{} {}",
                    if c.request == "GET" { "GET" } else { "POST" },
                    c.patches
                ),
                value: spread(&c.rounds_ns),
                peer: false,
            })
            .collect(),
    }];
    if let Some(h) = &r.http {
        let mut cases: Vec<HttpCase> = Vec::new();
        for s in &h.summary {
            let counted = |f: fn(&http::Run) -> f64| -> Vec<f64> {
                h.rounds
                    .iter()
                    .filter(|x| x.server == s.server && x.request == s.request)
                    .filter(|x| !x.generator_limited)
                    .map(f)
                    .collect()
            };
            let server = match s.server {
                x if x.starts_with("vigil") => "vigil",
                x if x.contains("ModSecurity") => "modsec+crs",
                _ => "nginx",
            };
            cases.push(HttpCase {
                label: format!(
                    "{server} {}",
                    if s.request == "GET" { "GET" } else { "POST" }
                ),
                rps: spread(&counted(|x| x.requests_per_s)),
                p99_ms: spread(&counted(|x| x.p99_ms)),
                peer: !s.server.starts_with("vigil"),
            });
        }
        panels.extend(http_panels(&cases));
    }
    let caption = if r.http.is_some() {
        format!(
            "in process: {} rounds of {} s; HTTPS: gateway with {} patches + detection, \
             wrk on CPU {}, servers on CPU {}, {} rounds of {} s, {} connections",
            args.rounds,
            args.seconds,
            args.http_patches,
            args.generator_cpu,
            args.server_cpu,
            args.http_rounds,
            args.http_seconds,
            args.conns
        )
    } else {
        format!(
            "in process, {} rounds of {} s (HTTPS comparison: --http)",
            args.rounds, args.seconds
        )
    };
    svg(
        "Virtual patches and detection (perf/waf)",
        &caption,
        &panels,
    )
}

/// The values the detection stage would hand the detector for `req` (path segments, query
/// values, cookies, user-agent and referer, JSON strings).
fn detection_values(text: &str) -> Vec<Vec<u8>> {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let mut out = Vec::new();
    let target = head.split_whitespace().nth(1).unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    out.extend(
        path.split('/')
            .filter(|s| !s.is_empty())
            .map(|s| s.as_bytes().to_vec()),
    );
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.push(k.as_bytes().to_vec());
        out.push(v.as_bytes().to_vec());
    }
    for line in head.lines().skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        match name.to_ascii_lowercase().as_str() {
            "user-agent" | "referer" => out.push(value.trim().as_bytes().to_vec()),
            "cookie" => out.extend(
                value
                    .split(';')
                    .filter_map(|c| c.split_once('=').map(|(_, v)| v.as_bytes().to_vec())),
            ),
            _ => {}
        }
    }
    if let Ok(doc) = serde_json::from_str::<serde_json::Value>(body) {
        fn walk(v: &serde_json::Value, out: &mut Vec<Vec<u8>>) {
            match v {
                serde_json::Value::String(s) => out.push(s.as_bytes().to_vec()),
                serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
                serde_json::Value::Object(m) => m.iter().for_each(|(k, x)| {
                    out.push(k.as_bytes().to_vec());
                    walk(x, out);
                }),
                _ => {}
            }
        }
        walk(&doc, &mut out);
    }
    out
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(cfg) = &args.serve_gateway {
        return http::serve(cfg, args.serve_patches);
    }
    if args.generator_cpu == args.server_cpu {
        anyhow::bail!("--generator-cpu and --server-cpu must differ");
    }
    let post = post();
    let requests: [(&'static str, &str); 2] = [("GET", GET), ("POST 1 KiB JSON", &post)];
    let parsed: Vec<(&'static str, FileRequest)> = requests
        .iter()
        .map(|(name, text)| {
            Ok((
                *name,
                FileRequest::parse(text.as_bytes()).map_err(anyhow::Error::msg)?,
            ))
        })
        .collect::<Result<_>>()?;
    let mut counts = vec![0];
    counts.extend(args.counts.iter().copied().filter(|c| *c > 0));
    let mut cases = Vec::new();
    for &n in &counts {
        let set = patches(n).with_context(|| format!("{n} patches"))?;
        for (name, req) in &parsed {
            let hits = set.evaluate(req, true);
            anyhow::ensure!(
                hits.is_empty(),
                "{name} matched {hits:?}: the benchmark needs misses"
            );
            let (ns, rounds) = measure(args.rounds, args.seconds, || {
                black_box(set.evaluate(black_box(req), true));
            });
            cases.push(Case {
                request: name,
                patches: n,
                ns_per_request: ns,
                added_ns: 0.0,
                rounds_ns: rounds,
            });
        }
    }
    for i in 0..cases.len() {
        let base = cases
            .iter()
            .find(|c| c.patches == 0 && c.request == cases[i].request)
            .map_or(0.0, |c| c.ns_per_request);
        cases[i].added_ns = cases[i].ns_per_request - base;
    }
    let mut steps = Vec::new();
    for (name, _) in &parsed {
        let series: Vec<&Case> = cases.iter().filter(|c| c.request == *name).collect();
        for w in series.windows(2) {
            let target = (w[1].patches <= 1_000).then_some(1_000.0);
            let added = w[1].ns_per_request - w[0].ns_per_request;
            steps.push(Step {
                request: name,
                from: w[0].patches,
                to: w[1].patches,
                added_ns: added,
                target_ns: target,
                met: target.map(|t| added < t),
            });
        }
    }
    let detector = vigil_detect::Detector::default();
    let mut detection_ns = Vec::new();
    for (name, text) in &requests {
        let values = detection_values(text);
        anyhow::ensure!(
            values.iter().all(|v| detector.detect(v).is_none()),
            "{name}: the benign request has a finding"
        );
        let (ns, _) = measure(args.rounds, args.seconds, || {
            for v in &values {
                black_box(detector.detect(black_box(v)));
            }
        });
        detection_ns.push((*name, ns));
    }

    println!(
        "Virtual patches: evaluation per request, none matching (median of {} rounds)",
        args.rounds
    );
    println!(
        "{:<18} {:>8} {:>12} {:>12}",
        "request", "patches", "ns/request", "+ns/empty"
    );
    for c in &cases {
        println!(
            "{:<18} {:>8} {:>12.0} {:>12.0}",
            c.request, c.patches, c.ns_per_request, c.added_ns
        );
    }
    println!("\nsteps (target: < 1000 ns per step up to 1,000 patches)");
    for s in &steps {
        println!(
            "{:<18} {:>6} -> {:<6} {:>+10.0} ns  {}",
            s.request,
            s.from,
            s.to,
            s.added_ns,
            match s.met {
                Some(true) => "met",
                Some(false) => "NOT MET",
                None => "-",
            }
        );
    }
    println!("\nInjection detection over every inspected value of the request");
    for (name, ns) in &detection_ns {
        println!("{name:<18} {ns:>10.0} ns");
    }
    let failed = steps.iter().any(|s| s.met == Some(false));
    let machine = vigil_testkit::machine::machine();
    let http = if args.http {
        let dir = std::env::temp_dir().join(format!("vigil-perf-waf-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let r = http::compare(
            &dir,
            args.http_patches,
            args.http_rounds,
            args.http_seconds,
            args.conns,
            (args.generator_cpu, args.server_cpu),
        );
        let _ = std::fs::remove_dir_all(&dir);
        let r = r?;
        println!(
            "\nHTTPS, TLS 1.3, wrk 1 thread x {} connections on CPU {}, servers on CPU {} \
             (median of {} rounds of {} s; the gateway with {} patches and detection on)",
            args.conns,
            args.generator_cpu,
            args.server_cpu,
            args.http_rounds,
            args.http_seconds,
            args.http_patches
        );
        println!(
            "{:<30} {:<16} {:>10} {:>8} {:>14}",
            "server", "request", "req/s", "p99 ms", "x ModSecurity"
        );
        for s in &r.summary {
            println!(
                "{:<30} {:<16} {:>10.0} {:>8.2} {:>14.2}",
                s.server, s.request, s.requests_per_s, s.p99_ms, s.ratio_to_modsecurity
            );
        }
        let limited = r.rounds.iter().filter(|x| x.generator_limited).count();
        if limited > 0 {
            println!("{limited} runs left out: the generator was above 90% of its CPU");
        }
        Some(r)
    } else {
        None
    };
    let report = Report {
        machine,
        patch_cost: cases,
        steps,
        detection_ns,
        http,
    };
    vigil_testkit::machine::write_report(&args.out, &report)?;
    let svg_path = args.out.with_extension("svg");
    std::fs::write(&svg_path, plot(&report, &args))
        .with_context(|| format!("writing {}", svg_path.display()))?;
    println!("\nwrote {} and {}", args.out.display(), svg_path.display());
    if args.check && failed {
        std::process::exit(2);
    }
    Ok(())
}
