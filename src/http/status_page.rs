//! `GET /` (and `/status` for browsers): the operators' status page,
//! rendered on the server from the same snapshot as the JSON. No script,
//! no external asset, readable on a phone; colour always comes with text,
//! so nothing is said by colour alone.

use std::fmt::Write;

use crate::clock::{UnixMillis, rfc3339};
use crate::http::status::evidence_link;
use crate::state::snapshot::{BaseState, Snapshot};
use crate::vantage::view::VantageView;
use crate::verdict::{Reason, Verdict};

/// Article rows per page of a site's matrix.
pub const ROWS_PER_PAGE: usize = 50;

const STYLE: &str = "body{font:16px/1.45 system-ui,sans-serif;margin:0 auto;max-width:72rem;padding:1rem;color:#1a1a1a;background:#fff}\
h1{font-size:1.5rem}h2{font-size:1.25rem;margin-top:2rem}table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}\
th,td{border:1px solid #bbb;padding:.3rem .45rem;text-align:left;vertical-align:top}th{background:#f0f0f0}\
.wrap{overflow-x:auto}.ok{background:#d9f2dd}.warn{background:#fff0c2}.bad{background:#f9d0d0}.none{background:#eee}\
.bar{display:inline-block;height:.7rem;background:#2e7d32;vertical-align:middle}.track{display:inline-block;width:6rem;height:.7rem;background:#ddd;margin-right:.3rem}\
a{color:#0b4fa8}small{color:#444}nav a{margin-right:.6rem}";

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn state_class(state: BaseState) -> &'static str {
    match state {
        BaseState::Up => "ok",
        BaseState::Degraded => "warn",
        BaseState::Down => "bad",
    }
}

fn verdict_class(verdict: Option<Verdict>) -> &'static str {
    match verdict {
        Some(Verdict::Same) => "ok",
        Some(Verdict::Stale | Verdict::Missing) => "warn",
        Some(Verdict::Diverged | Verdict::Unreachable) => "bad",
        Some(Verdict::Unknown) | None => "none",
    }
}

fn uptime_bar(out: &mut String, label: &str, ratio: Option<f64>) {
    match ratio {
        Some(r) => {
            let percent = (r * 100.0).clamp(0.0, 100.0);
            let _ = write!(
                out,
                "<div><span class=\"track\" aria-hidden=\"true\"><span class=\"bar\" style=\"width:{percent:.0}%\"></span></span>{label} {percent:.2}%</div>"
            );
        }
        None => {
            let _ = write!(out, "<div>{label} no data</div>");
        }
    }
}

/// The page; `page` is the 1-based page of every site's article matrix.
pub fn render(snapshot: &Snapshot, vantage: &VantageView, page: usize, now: UnixMillis) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>mirrorgate status</title><style>{STYLE}</style></head>\n<body>\n<h1>mirrorgate status</h1>\n"
    );
    let round = &snapshot.round;
    let _ = writeln!(
        out,
        "<p>Generated {}. Rounds completed: {}; last finished {}.</p>",
        rfc3339(now),
        round.completed,
        round.last_finished_at.map_or_else(|| "never".to_string(), rfc3339)
    );
    for (site_index, (meta, view)) in snapshot.catalog.sites.iter().zip(&snapshot.sites).enumerate() {
        let name = escape(&meta.name);
        let _ = writeln!(
            out,
            "<section aria-labelledby=\"site-{name}\"><h2 id=\"site-{name}\">{name}</h2>"
        );
        let _ = writeln!(
            out,
            "<div class=\"wrap\"><table><caption>Bases of {name}</caption><thead><tr><th scope=\"col\">Base</th><th scope=\"col\">Role</th>\
             <th scope=\"col\">State</th><th scope=\"col\">Why</th><th scope=\"col\">Uptime</th><th scope=\"col\">Latency (p50 / p95)</th>\
             <th scope=\"col\">Articles same / stale / diverged / missing / unreachable</th></tr></thead><tbody>"
        );
        for (b, (url, base)) in meta.base_names.iter().zip(&view.bases).enumerate() {
            let reason = Reason::ALL
                .iter()
                .filter(|r| base.reason_counts[r.index()] > 0)
                .max_by_key(|r| base.reason_counts[r.index()])
                .map(|r| {
                    format!(
                        "{} on {} article(s)",
                        r.as_str().replace('_', " "),
                        base.reason_counts[r.index()]
                    )
                })
                .unwrap_or_else(|| {
                    if base.verdict_counts[Verdict::Stale.index()] > 0 {
                        format!("stale on {} article(s)", base.verdict_counts[Verdict::Stale.index()])
                    } else if base.verdict_counts[Verdict::Missing.index()] > 0 {
                        format!("missing {} article(s)", base.verdict_counts[Verdict::Missing.index()])
                    } else {
                        String::new()
                    }
                });
            let mut uptime = String::new();
            uptime_bar(&mut uptime, "24 h", base.uptime.day);
            uptime_bar(&mut uptime, "7 d", base.uptime.week);
            uptime_bar(&mut uptime, "30 d", base.uptime.month);
            let latency = match (base.latency_p50, base.latency_p95) {
                (Some(p50), Some(p95)) => format!("{p50} ms / {p95} ms"),
                _ => "no data".into(),
            };
            let c = base.verdict_counts;
            let _ = writeln!(
                out,
                "<tr><th scope=\"row\"><a href=\"{0}\">{0}</a></th><td>{1}</td><td class=\"{2}\">{3}</td><td>{4}</td><td>{uptime}</td><td>{latency}</td>\
                 <td>{5} / {6} / {7} / {8} / {9}</td></tr>",
                escape(url),
                if b == 0 { "primary" } else { "mirror" },
                state_class(base.state),
                base.state.as_str(),
                escape(&reason),
                c[Verdict::Same.index()],
                c[Verdict::Stale.index()],
                c[Verdict::Diverged.index()],
                c[Verdict::Missing.index()],
                c[Verdict::Unreachable.index()],
            );
        }
        let _ = writeln!(out, "</tbody></table></div>");
        if let Some(per_base) = vantage.countries.get(site_index)
            && per_base.iter().any(|c| !c.is_empty())
        {
            let _ = writeln!(
                out,
                "<div class=\"wrap\"><table><caption>{name} by country (agents)</caption><thead><tr><th scope=\"col\">Base</th><th scope=\"col\">Country</th>\
                 <th scope=\"col\">State</th><th scope=\"col\">Agents</th></tr></thead><tbody>"
            );
            for (url, countries) in meta.base_names.iter().zip(per_base) {
                for (country, status) in countries {
                    let class = match status.state.as_str() {
                        "reachable" => "ok",
                        "blocked" => "bad",
                        "down" => "bad",
                        _ => "none",
                    };
                    let kind = status
                        .kind
                        .map(|k| {
                            format!(
                                " ({})",
                                serde_json::to_value(k)
                                    .ok()
                                    .and_then(|v| v.as_str().map(str::to_string))
                                    .unwrap_or_default()
                            )
                        })
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "<tr><th scope=\"row\">{}</th><td>{country}</td><td class=\"{class}\">{}{kind}</td><td>{}</td></tr>",
                        escape(url),
                        status.state.as_str(),
                        status.agents
                    );
                }
            }
            let _ = writeln!(out, "</tbody></table></div>");
        }
        // Newest first: discovered articles follow the configured ones
        // newest first, so the list is read from its end.
        let total = meta.articles.len();
        let pages = total.div_ceil(ROWS_PER_PAGE).max(1);
        let page = page.clamp(1, pages);
        let _ = writeln!(
            out,
            "<div class=\"wrap\"><table><caption>Articles of {name}, page {page} of {pages} (newest first)</caption><thead><tr><th scope=\"col\">Article</th><th scope=\"col\">Tier</th>"
        );
        for url in &meta.base_names {
            let _ = write!(out, "<th scope=\"col\">{}</th>", escape(url));
        }
        let _ = writeln!(out, "</tr></thead><tbody>");
        let rows = (0..total).rev().skip((page - 1) * ROWS_PER_PAGE).take(ROWS_PER_PAGE);
        for a in rows {
            let path = &meta.articles[a];
            let article = &view.articles[a];
            let plan = snapshot.catalog.plan(site_index, a, article, now);
            let _ = write!(
                out,
                "<tr><th scope=\"row\">{}</th><td title=\"next probe {}\">{}</td>",
                escape(path),
                rfc3339(plan.next_probe_at),
                plan.tier.as_str()
            );
            for (b, url) in meta.base_names.iter().enumerate() {
                let verdict = article.verdict(b);
                let label = verdict.map_or("not probed", |v| v.as_str());
                let reason = article
                    .reason(b)
                    .map(|r| format!(" ({})", r.as_str().replace('_', " ")))
                    .unwrap_or_default();
                let cell = if matches!(verdict, Some(Verdict::Stale | Verdict::Diverged)) {
                    format!(
                        "<a href=\"{}\">{label}{reason}</a>",
                        escape(&evidence_link(&meta.name, path, url))
                    )
                } else {
                    format!("{label}{reason}")
                };
                let _ = write!(out, "<td class=\"{}\">{cell}</td>", verdict_class(verdict));
            }
            let _ = writeln!(out, "</tr>");
        }
        let _ = writeln!(out, "</tbody></table></div>");
        if pages > 1 {
            let _ = write!(out, "<nav aria-label=\"Pages of {name}\">");
            for p in 1..=pages.min(50) {
                if p == page {
                    let _ = write!(out, "<strong>{p}</strong> ");
                } else {
                    let _ = write!(out, "<a href=\"/?page={p}\">{p}</a> ");
                }
            }
            let _ = writeln!(out, "</nav>");
        }
        let _ = writeln!(out, "</section>");
    }
    if !vantage.agents.is_empty() {
        let _ = writeln!(
            out,
            "<h2>Agents</h2><div class=\"wrap\"><table><thead><tr><th scope=\"col\">Agent</th><th scope=\"col\">Country</th><th scope=\"col\">Online</th>\
             <th scope=\"col\">Last seen</th><th scope=\"col\">Results accepted / rejected</th></tr></thead><tbody>"
        );
        for agent in &vantage.agents {
            let _ = writeln!(
                out,
                "<tr><th scope=\"row\">{}</th><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{} / {}</td></tr>",
                escape(&agent.name),
                agent.country,
                if agent.online { "ok" } else { "bad" },
                if agent.online { "online" } else { "offline" },
                agent.last_seen.as_deref().unwrap_or("never"),
                agent.results_accepted,
                agent.results_rejected
            );
        }
        let _ = writeln!(out, "</tbody></table></div>");
    }
    let _ = writeln!(
        out,
        "<p><small>JSON: <a href=\"/status\">/status</a> · metrics: <a href=\"/metrics\">/metrics</a> · mirror list: <a href=\"/mirrors.json\">/mirrors.json</a></small></p>\n</body></html>"
    );
    out
}
