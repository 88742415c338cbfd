//! The plot of a benchmark run, as a small hand-written SVG (no plotting dependency): panels
//! stacked under a title, each a bar per case at the median of its rounds with a whisker from
//! the lowest to the highest round. Peers are drawn grey, Vigil blue; a case with no counted
//! round (every one refused as generator-limited) is marked `refused`.

use std::fmt::Write;

/// One case of a panel: (lowest, median, highest) over its counted rounds, NaN when none
/// counted.
#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    pub value: (f64, f64, f64),
    /// A peer (nginx, ModSecurity...) rather than Vigil.
    pub peer: bool,
}

/// One panel: a title (with its unit) and its bars.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub bars: Vec<Bar>,
}

/// A case measured for requests/s and p99, as the HTTP benchmarks report it.
#[derive(Debug, Clone)]
pub struct HttpCase {
    pub label: String,
    pub rps: (f64, f64, f64),
    pub p99_ms: (f64, f64, f64),
    pub peer: bool,
}

/// The two panels of an HTTP comparison: requests/s and p99 latency per case.
pub fn http_panels(cases: &[HttpCase]) -> [Panel; 2] {
    let bars = |f: fn(&HttpCase) -> (f64, f64, f64)| {
        cases
            .iter()
            .map(|c| Bar {
                label: c.label.clone(),
                value: f(c),
                peer: c.peer,
            })
            .collect()
    };
    [
        Panel {
            title: "requests/s (median; whisker: lowest to highest round)".into(),
            bars: bars(|c| c.rps),
        },
        Panel {
            title: "p99 latency, ms (same rounds)".into(),
            bars: bars(|c| c.p99_ms),
        },
    ]
}

const W: f64 = 980.0;
const PANEL_H: f64 = 300.0;
const LEFT: f64 = 70.0;
const BAR_W: f64 = 38.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A round number at or above `v` for an axis: 1, 2 or 5 times a power of ten.
fn nice_max(v: f64) -> f64 {
    if !v.is_finite() || v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|&m| m >= v)
        .unwrap_or(10.0 * p)
}

fn panel(svg: &mut String, top: f64, title: &str, bars: &[Bar]) {
    let plot_h = PANEL_H - 90.0;
    let base = top + 40.0 + plot_h;
    let max = nice_max(
        bars.iter()
            .map(|b| b.value.2)
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max),
    );
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="{}" font-size="15" font-weight="bold">{}</text>"#,
        top + 22.0,
        esc(title)
    );
    for i in 0..=4 {
        let v = max * f64::from(i) / 4.0;
        let y = base - plot_h * f64::from(i) / 4.0;
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            W - 20.0,
            LEFT - 6.0,
            y + 4.0,
            if max >= 1000.0 {
                format!("{:.0}k", v / 1000.0)
            } else {
                format!("{v:.1}")
            }
        );
    }
    let slot = (W - LEFT - 20.0) / bars.len().max(1) as f64;
    for (i, bar) in bars.iter().enumerate() {
        let (lo, med, hi) = (&bar.value.0, &bar.value.1, &bar.value.2);
        let label = &bar.label;
        let cx = LEFT + slot * (i as f64 + 0.5);
        let colour = if bar.peer { "#888" } else { "#2b6cb0" };
        let y = |v: f64| base - plot_h * (v / max).clamp(0.0, 1.0);
        if med.is_finite() {
            let _ = writeln!(
                svg,
                r#"<rect x="{:.1}" y="{:.1}" width="{BAR_W}" height="{:.1}" fill="{colour}"/>"#,
                cx - BAR_W / 2.0,
                y(*med),
                base - y(*med)
            );
            let _ = writeln!(
                svg,
                r#"<line x1="{cx:.1}" y1="{:.1}" x2="{cx:.1}" y2="{:.1}" stroke="black"/><text x="{cx:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"#,
                y(*lo),
                y(*hi),
                y(*hi) - 4.0,
                if *med >= 1000.0 {
                    format!("{:.1}k", med / 1000.0)
                } else {
                    format!("{med:.2}")
                }
            );
        } else {
            let _ = writeln!(
                svg,
                r##"<text x="{cx:.1}" y="{:.1}" font-size="11" text-anchor="middle" fill="#c00">refused</text>"##,
                base - 6.0
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{cx:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text>"#,
            base + 16.0,
            esc(label)
        );
    }
}

/// The SVG document: `title`, `caption` under it, then `panels` one under the other.
pub fn svg(title: &str, caption: &str, panels: &[Panel]) -> String {
    let h = 60.0 + panels.len() as f64 * PANEL_H;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="{LEFT}" y="24" font-size="17" font-weight="bold">{}</text>
<text x="{LEFT}" y="44" font-size="12">{}</text>
"#,
        esc(title),
        esc(caption)
    );
    for (i, p) in panels.iter().enumerate() {
        panel(&mut s, 50.0 + i as f64 * PANEL_H, &p.title, &p.bars);
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_and_refused_cases_are_drawn() {
        let cases = [
            HttpCase {
                label: "nginx-get".into(),
                rps: (17_000.0, 18_000.0, 19_000.0),
                p99_ms: (4.0, 5.0, 6.0),
                peer: true,
            },
            HttpCase {
                label: "a<b".into(),
                rps: (f64::NAN, f64::NAN, f64::NAN),
                p99_ms: (f64::NAN, f64::NAN, f64::NAN),
                peer: false,
            },
        ];
        let s = svg("t", "c", &http_panels(&cases));
        assert!(s.starts_with("<svg") && s.ends_with("</svg>\n"));
        assert!(s.contains("18.0k") && s.contains("refused") && s.contains("a&lt;b"));
        assert_eq!(nice_max(18_500.0), 20_000.0);
        assert_eq!(nice_max(4.2), 5.0);
    }
}
