//! `vigilctl policy check FILE`: compile an OpenAPI description offline, the way the gateway
//! would, and say what it enforces and what it refuses. Exits non-zero when it would not load.

use serde_json::Value;
use vigil_policy::PolicyOptions;

use crate::cli::PolicyCmd;

pub fn run(cmd: &PolicyCmd, json: bool) -> anyhow::Result<String> {
    let PolicyCmd::Check {
        file,
        strict_query,
        strict_objects,
    } = cmd;
    let options = PolicyOptions {
        strict_query: *strict_query,
        strict_objects: *strict_objects,
        ..PolicyOptions::default()
    };
    let report = vigil_policy::check(file, &options);
    let ok = report.ok;
    let v = serde_json::to_value(&report)?;
    let out = if json {
        format!("{}\n", serde_json::to_string_pretty(&v)?)
    } else {
        render(&v)
    };
    if !ok {
        // The report goes to stdout; the exit status says the gateway would refuse it.
        crate::exit::print(&out);
        return Err(crate::exit::reported(format!(
            "{} would not load: fix the errors above",
            file.display()
        )));
    }
    Ok(out)
}

fn render(v: &Value) -> String {
    let mut out = String::new();
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    out.push_str(&format!(
        "openapi {}  ({} paths, {} operations, {} parameters, {} body schemas)\n",
        v["openapi"].as_str().unwrap_or("?"),
        n("paths"),
        n("operations"),
        n("parameters"),
        n("body_schemas")
    ));
    let bases: Vec<&str> = v["base_paths"]
        .as_array()
        .map(|b| {
            b.iter()
                .filter_map(Value::as_str)
                .filter(|b| !b.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if !bases.is_empty() {
        out.push_str(&format!("base paths: {}\n", bases.join(", ")));
    }
    if let Some(routes) = v["routes"].as_array().filter(|r| !r.is_empty()) {
        out.push_str(&format!(
            "\n{:<48} {:<9} {:<8} {:>6}  BODY\n",
            "ROUTE", "MODE", "DEGRADE", "PARAMS"
        ));
        for r in routes {
            out.push_str(&format!(
                "{:<48} {:<9} {:<8} {:>6}  {}\n",
                r["id"].as_str().unwrap_or("?"),
                r["mode"].as_str().unwrap_or("?"),
                r["on_degrade"].as_str().unwrap_or("?"),
                r["parameters"].as_u64().unwrap_or(0),
                if r["body"].as_bool() == Some(true) {
                    "yes"
                } else {
                    "-"
                }
            ));
        }
    }
    for (title, key) in [(
        "unsupported keywords (the policy fails to load)",
        "unsupported",
    )] {
        if let Some(items) = v[key].as_array().filter(|i| !i.is_empty()) {
            out.push_str(&format!("\n{title}:\n"));
            for k in items {
                out.push_str(&format!(
                    "  {} at {}: {}\n",
                    k["keyword"].as_str().unwrap_or("?"),
                    k["location"].as_str().unwrap_or("?"),
                    k["why"].as_str().unwrap_or("")
                ));
            }
        }
    }
    if let Some(errors) = v["errors"].as_array().filter(|e| !e.is_empty()) {
        out.push_str("\nerrors:\n");
        for e in errors {
            let at = e["pointer"]
                .as_str()
                .filter(|p| !p.is_empty())
                .unwrap_or("(document)");
            out.push_str(&format!(
                "  {at}: {}\n",
                e["reason"].as_str().unwrap_or("?")
            ));
        }
    }
    if let Some(warnings) = v["warnings"].as_array().filter(|w| !w.is_empty()) {
        out.push_str("\nwarnings:\n");
        for w in warnings {
            out.push_str(&format!("  {}\n", w.as_str().unwrap_or("?")));
        }
    }
    out.push_str(if v["ok"].as_bool() == Some(true) {
        "\nok: the gateway would load this description\n"
    } else {
        "\nnot loadable\n"
    });
    out
}
