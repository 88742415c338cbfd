//! The monitoring assets of `config/monitoring` (docs/monitoring.md): the alert rules pass
//! `promtool check rules` and their unit tests, every alert is tested both ways and documented,
//! and the alerts and the Grafana dashboard query only metrics that the reference tables of
//! docs/monitoring.md list. Needs `promtool` (Debian package `prometheus`, installed by
//! scripts/setup.sh); never skipped. No root, no network.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

const ALERTS: &str = "config/monitoring/alerts.yml";
const ALERT_TESTS: &str = "config/monitoring/alerts_test.yml";
const DASHBOARD: &str = "config/monitoring/grafana/vigil.json";
const DOC: &str = "docs/monitoring.md";

/// What every dashboard query must select, so one box's panel never mixes in another's series.
const INSTANCE_MATCHER: &str = "instance=~\"$instance\"";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> Result<String> {
    std::fs::read_to_string(root().join(rel)).with_context(|| format!("reading {rel}"))
}

/// Runs promtool from the repository root; an error carries its whole output.
fn promtool(args: &[&str]) -> Result<()> {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(root())
        .output()
        .context("running promtool: install the Debian package `prometheus` (scripts/setup.sh)")?;
    ensure!(
        out.status.success(),
        "promtool {} failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

// --- docs/monitoring.md ------------------------------------------------------------------------

/// Metric name -> type, from the rows of the reference tables: `` | `name` | type | ... ``.
fn documented_metrics() -> Result<BTreeMap<String, String>> {
    let doc = read(DOC)?;
    let mut metrics = BTreeMap::new();
    for line in doc.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // A row is "", name, type, labels, meaning, "".
        let (Some(name), Some(kind)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        if !matches!(*kind, "counter" | "gauge" | "histogram" | "summary") {
            continue;
        }
        let Some(name) = name.strip_prefix('`').and_then(|n| n.strip_suffix('`')) else {
            bail!("{DOC}: a metric row must start with the name in backticks: {line}");
        };
        ensure!(is_metric_name(name), "{DOC}: not a metric name: {name}");
        let earlier = metrics.insert(name.to_owned(), (*kind).to_owned());
        ensure!(earlier.is_none(), "{DOC}: {name} is listed twice");
    }
    ensure!(
        metrics.len() > 30,
        "{DOC}: found only {} metric rows",
        metrics.len()
    );
    Ok(metrics)
}

/// The series names a query may use: histograms and summaries add their suffixed series.
fn queryable(metrics: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (name, kind) in metrics {
        names.insert(name.clone());
        let suffixes: &[&str] = match kind.as_str() {
            "histogram" => &["_bucket", "_sum", "_count"],
            "summary" => &["_sum", "_count"],
            _ => &[],
        };
        for s in suffixes {
            names.insert(format!("{name}{s}"));
        }
    }
    names
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

// --- PromQL ------------------------------------------------------------------------------------

/// A metric selector in a query: its name and the text between its braces (empty without).
#[derive(Debug)]
struct Selector {
    name: String,
    matchers: String,
}

/// Words that are not metric names even when no `(` follows them.
const KEYWORDS: &str = "and or unless bool offset sum min max avg group stddev stdvar count \
                        count_values bottomk topk quantile inf nan";
/// Words followed by a parenthesised list of label names.
const GROUPING: &str = "by without on ignoring group_left group_right";

fn is_one_of(words: &str, word: &str) -> bool {
    words.split_whitespace().any(|w| w == word)
}

/// The metric selectors of a PromQL expression, found by a scanner that skips strings, label
/// matchers, ranges, numbers, Grafana variables, function names and label lists. Enough for
/// the queries in config/monitoring; a form it does not know is an error, not a guess.
fn selectors(expr: &str) -> Result<Vec<Selector>> {
    let s: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&s, i)?;
        } else if c == '[' {
            i = skip_until(&s, i, ']')?;
        } else if c == '{' {
            bail!("a selector without a metric name cannot be checked: {expr}");
        } else if c == '$' {
            // Grafana variables: $name or ${name}.
            i += 1;
            if s.get(i) == Some(&'{') {
                i = skip_until(&s, i, '}')?;
            } else {
                while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == '_') {
                    i += 1;
                }
            }
        } else if c.is_ascii_digit() || (c == '.' && s.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            // Numbers and durations: 0.99, 86400, 1e9, 5m.
            while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == '_' || s[i] == ':') {
                i += 1;
            }
            let word: String = s[start..i].iter().collect();
            let mut next = i;
            while next < s.len() && s[next].is_whitespace() {
                next += 1;
            }
            let before_paren = s.get(next) == Some(&'(');
            if is_one_of(GROUPING, &word) {
                if before_paren {
                    i = skip_until(&s, next, ')')?;
                }
            } else if is_one_of(KEYWORDS, &word) || before_paren {
                // An aggregation, an operator or a function call.
            } else {
                let mut matchers = String::new();
                if s.get(next) == Some(&'{') {
                    let end = skip_until(&s, next, '}')?;
                    matchers = s[next + 1..end - 1].iter().collect();
                    i = end;
                }
                out.push(Selector {
                    name: word,
                    matchers,
                });
            }
        } else {
            i += 1;
        }
    }
    Ok(out)
}

/// Index after the string literal that starts at `start`.
fn skip_string(s: &[char], start: usize) -> Result<usize> {
    let quote = s[start];
    let mut i = start + 1;
    while i < s.len() {
        if s[i] == '\\' && quote != '`' {
            i += 2;
            continue;
        }
        if s[i] == quote {
            return Ok(i + 1);
        }
        i += 1;
    }
    bail!("unterminated string in {}", s.iter().collect::<String>())
}

/// Index after the `close` that ends the group opened at `start`, skipping strings inside.
fn skip_until(s: &[char], start: usize, close: char) -> Result<usize> {
    let open = s[start];
    let mut depth = 0;
    let mut i = start;
    while i < s.len() {
        match s[i] {
            '"' | '\'' | '`' => {
                i = skip_string(s, i)?;
                continue;
            }
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return Ok(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    bail!("no closing {close:?} in {}", s.iter().collect::<String>())
}

#[test]
fn the_scanner_finds_metrics_and_nothing_else() -> Result<()> {
    let names = |e: &str| -> Result<Vec<String>> {
        Ok(selectors(e)?.into_iter().map(|s| s.name).collect())
    };
    let quantile = "histogram_quantile(0.99, sum by (le) \
                    (rate(a_bucket{instance=~\"$instance\"}[$__rate_interval])))";
    assert_eq!(names(quantile)?, ["a_bucket"]);
    let class = "sum by (class) \
                 (label_replace(rate(b_total[5m]), \"class\", \"${1}xx\", \"status\", \"(.).*\"))";
    assert_eq!(names(class)?, ["b_total"]);
    assert_eq!(
        names("(c - time()) / 86400 < 14 >= 3 and on (instance) d offset 5m unless e")?,
        ["c", "d", "e"]
    );
    assert_eq!(
        names("sum without (le) (f) or max(g) bool == 1e3")?,
        ["f", "g"]
    );
    let s = selectors("up{job=\"vigil\", x=\"}\"} == 0")?;
    assert_eq!(s[0].name, "up");
    assert_eq!(s[0].matchers, "job=\"vigil\", x=\"}\"");
    assert!(selectors("{__name__=~\"vigil_.*\"}").is_err());
    Ok(())
}

// --- alerts.yml --------------------------------------------------------------------------------

/// One rule of alerts.yml, read line by line (the file is plain YAML: one `- alert:` item per
/// rule, `expr:` inline or as a block scalar).
#[derive(Debug, Default)]
struct Rule {
    alert: String,
    expr: String,
    has_for: bool,
    severity: Option<String>,
    has_summary: bool,
    has_description: bool,
}

fn alert_rules() -> Result<Vec<Rule>> {
    let text = read(ALERTS)?;
    let lines: Vec<&str> = text.lines().collect();
    let mut rules: Vec<Rule> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let t = line.trim_start();
        i += 1;
        if let Some(name) = t.strip_prefix("- alert:") {
            rules.push(Rule {
                alert: name.trim().to_owned(),
                ..Rule::default()
            });
            continue;
        }
        let Some(rule) = rules.last_mut() else {
            continue;
        };
        if let Some(rest) = t.strip_prefix("expr:") {
            let rest = rest.trim();
            if rest.starts_with('|') || rest.starts_with('>') {
                let indent = line.len() - t.len();
                let mut body = Vec::new();
                while i < lines.len() {
                    let l = lines[i];
                    if !l.trim().is_empty() && l.len() - l.trim_start().len() <= indent {
                        break;
                    }
                    body.push(l.trim());
                    i += 1;
                }
                rule.expr = body.join("\n");
            } else {
                ensure!(
                    !rest.starts_with('"') && !rest.starts_with('\''),
                    "{ALERTS}: write quoted expressions as block scalars ({})",
                    rule.alert
                );
                rule.expr = rest.to_owned();
            }
        } else if t.starts_with("for:") {
            rule.has_for = true;
        } else if let Some(sev) = t.strip_prefix("severity:") {
            rule.severity = Some(sev.trim().to_owned());
        } else if t.starts_with("summary:") {
            rule.has_summary = true;
        } else if t.starts_with("description:") {
            rule.has_description = true;
        }
    }
    ensure!(
        rules.len() >= 12,
        "{ALERTS}: found only {} rules",
        rules.len()
    );
    Ok(rules)
}

#[test]
fn alert_rules_pass_promtool_check() -> Result<()> {
    promtool(&["check", "rules", ALERTS])
}

#[test]
fn alert_rules_pass_their_unit_tests() -> Result<()> {
    promtool(&["test", "rules", ALERT_TESTS])
}

#[test]
fn alerts_query_only_documented_metrics() -> Result<()> {
    let known = queryable(&documented_metrics()?);
    for rule in alert_rules()? {
        let found = selectors(&rule.expr).with_context(|| rule.alert.clone())?;
        ensure!(
            !found.is_empty(),
            "{}: no metric in {:?}",
            rule.alert,
            rule.expr
        );
        for sel in found {
            ensure!(
                known.contains(&sel.name),
                "{} uses {}, which {DOC} does not list",
                rule.alert,
                sel.name
            );
        }
    }
    Ok(())
}

#[test]
fn every_alert_tells_the_operator_and_is_tested_both_ways() -> Result<()> {
    let doc = read(DOC)?;
    let tests = read(ALERT_TESTS)?;
    // alertname -> (a case where it fires, a case where it must not).
    let mut cases: BTreeMap<&str, (bool, bool)> = BTreeMap::new();
    let lines: Vec<&str> = tests.lines().map(str::trim).collect();
    for (n, line) in lines.iter().enumerate() {
        let Some(name) = line.strip_prefix("alertname:") else {
            continue;
        };
        let expect = lines.get(n + 1).copied().unwrap_or_default();
        let entry = cases.entry(name.trim()).or_default();
        match expect {
            "exp_alerts: []" => entry.1 = true,
            "exp_alerts:" => entry.0 = true,
            other => {
                bail!("{ALERT_TESTS}: after alertname {name} expected exp_alerts, got {other}")
            }
        }
    }
    for rule in alert_rules()? {
        let name = rule.alert.as_str();
        ensure!(rule.has_for, "{name}: no `for:`");
        ensure!(
            matches!(rule.severity.as_deref(), Some("warning" | "critical")),
            "{name}: severity must be warning or critical, is {:?}",
            rule.severity
        );
        ensure!(
            rule.has_summary && rule.has_description,
            "{name}: summary and description"
        );
        let (fires, quiet) = cases.get(name).copied().unwrap_or_default();
        ensure!(fires, "{ALERT_TESTS}: no case where {name} fires");
        ensure!(quiet, "{ALERT_TESTS}: no case where {name} must stay quiet");
        ensure!(
            doc.contains(&format!("\n### {name}\n")),
            "{DOC}: no section `### {name}` saying what to do"
        );
    }
    Ok(())
}

// --- grafana/vigil.json ------------------------------------------------------------------------

fn dashboard() -> Result<Value> {
    serde_json::from_str(&read(DASHBOARD)?).with_context(|| format!("{DASHBOARD} is not JSON"))
}

/// Every `expr` string anywhere in the dashboard.
fn dashboard_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", Value::String(e)) => out.push(e.clone()),
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

#[test]
fn dashboard_queries_use_documented_metrics_and_select_the_box() -> Result<()> {
    let known = queryable(&documented_metrics()?);
    let mut exprs = Vec::new();
    dashboard_exprs(&dashboard()?, &mut exprs);
    ensure!(
        exprs.len() >= 30,
        "{DASHBOARD}: only {} queries",
        exprs.len()
    );
    for expr in &exprs {
        let found = selectors(expr)?;
        ensure!(!found.is_empty(), "no metric in {expr}");
        for sel in found {
            ensure!(
                known.contains(&sel.name),
                "{DASHBOARD} queries {}, which {DOC} does not list:\n{expr}",
                sel.name
            );
            ensure!(
                sel.matchers.contains(INSTANCE_MATCHER),
                "{DASHBOARD}: {} without {INSTANCE_MATCHER}:\n{expr}",
                sel.name
            );
        }
    }
    Ok(())
}

#[test]
fn dashboard_queries_are_valid_promql() -> Result<()> {
    let mut exprs = Vec::new();
    dashboard_exprs(&dashboard()?, &mut exprs);
    // Each query as a recording rule, Grafana's variables replaced as Grafana would; JSON is
    // YAML, so promtool reads the file as it is.
    let rules: Vec<Value> = exprs
        .iter()
        .enumerate()
        .map(|(n, e)| {
            let e = e
                .replace("$__rate_interval", "1m")
                .replace("$instance", ".+");
            json!({ "record": format!("dashboard:query_{n}"), "expr": e })
        })
        .collect();
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("dashboard_queries.yml");
    let file = json!({ "groups": [{ "name": "dashboard", "rules": rules }] });
    std::fs::write(&path, serde_json::to_string_pretty(&file)?)?;
    let path = path.to_str().context("temp path is not UTF-8")?;
    promtool(&["check", "rules", path])
}

#[test]
fn dashboard_has_its_variables_rows_and_data_source() -> Result<()> {
    let d = dashboard()?;
    ensure!(
        d["schemaVersion"].as_u64().is_some_and(|v| v >= 39),
        "schemaVersion: {}",
        d["schemaVersion"]
    );
    let vars = d["templating"]["list"]
        .as_array()
        .context("templating.list")?;
    let var = |name: &str| vars.iter().find(|v| v["name"] == name);
    let ds = var("datasource").context("no datasource variable")?;
    ensure!(
        ds["type"] == "datasource" && ds["query"] == "prometheus",
        "{ds}"
    );
    let instance = var("instance").context("no instance variable")?;
    ensure!(
        instance["datasource"]["uid"] == "${datasource}",
        "{instance}"
    );
    let query = instance["query"]["query"]
        .as_str()
        .context("instance query")?;
    let known = documented_metrics()?;
    let metric = query
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(", instance)"))
        .with_context(|| format!("instance variable: {query}"))?;
    ensure!(
        known.contains_key(metric),
        "instance variable reads {metric}, not in {DOC}"
    );

    let panels = d["panels"].as_array().context("panels")?;
    let rows: Vec<&str> = panels
        .iter()
        .filter(|p| p["type"] == "row")
        .filter_map(|p| p["title"].as_str())
        .collect();
    assert_eq!(
        rows,
        ["Overview", "Traffic", "XDP", "TLS & keys", "Fleet", "Host"]
    );
    let mut ids = BTreeSet::new();
    for p in panels {
        let id = p["id"].as_u64().context("panel without id")?;
        ensure!(ids.insert(id), "panel id {id} used twice");
        let pos = &p["gridPos"];
        let (x, w) = (pos["x"].as_u64(), pos["w"].as_u64());
        ensure!(
            x.zip(w).is_some_and(|(x, w)| w > 0 && x + w <= 24),
            "panel {id} outside the 24 columns: {pos}"
        );
        if p["type"] == "row" {
            continue;
        }
        ensure!(
            p["datasource"]["uid"] == "${datasource}",
            "panel {id}: {}",
            p["datasource"]
        );
        let targets = p["targets"].as_array().context("panel without targets")?;
        ensure!(!targets.is_empty(), "panel {id} has no query");
        for t in targets {
            ensure!(t["datasource"]["uid"] == "${datasource}", "panel {id}: {t}");
        }
    }
    Ok(())
}
