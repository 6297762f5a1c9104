//! A hand-written SVG chart: params/s (log scale) against tensor size (log
//! scale), one polyline per optimizer and adapter, from the single-tensor
//! runs; the GPT-2-like mix as an open diamond at its parameter count.

use std::fmt::Write as _;

use crate::cli::fmt_size;
use crate::report::AdapterReport;
use crate::suite::optimizers;

const W: f64 = 960.0;
const H: f64 = 600.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 300.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 70.0;

/// One color per optimizer, in [`optimizers`] order (then the clipped case).
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
];
/// One dash pattern per adapter.
const DASHES: [&str; 5] = ["", "8 4", "2 3", "10 3 2 3", "4 4"];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// The chart of `reports` as a standalone SVG document.
pub fn render(reports: &[AdapterReport], title: &str) -> String {
    let names: Vec<&str> = optimizers().iter().map(|o| o.0).collect();
    // (adapter index, optimizer index, points of single-tensor runs, mix point)
    type Series = (usize, usize, Vec<(f64, f64)>, Option<(f64, f64)>);
    let mut series: Vec<Series> = Vec::new();
    for (ai, a) in reports.iter().enumerate() {
        for (oi, name) in names.iter().enumerate() {
            let mut pts: Vec<(f64, f64)> = a
                .measurements
                .iter()
                .filter(|m| m.optimizer == *name && m.layout == "single" && m.dispatch == "fused")
                .map(|m| (m.params as f64, m.params_per_s))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mix = a
                .measurements
                .iter()
                .find(|m| m.optimizer == *name && m.layout == "gpt2_like" && m.dispatch == "fused")
                .map(|m| (m.params as f64, m.params_per_s));
            if !pts.is_empty() || mix.is_some() {
                series.push((ai, oi, pts, mix));
            }
        }
    }
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.2.iter().copied().chain(s.3))
        .filter(|p| p.0 > 0.0 && p.1 > 0.0 && p.1.is_finite())
        .collect();
    let (x0, x1) = if all.is_empty() {
        (16.0, 24.0)
    } else {
        let lo = all.iter().map(|p| p.0.log2()).fold(f64::INFINITY, f64::min);
        let hi = all
            .iter()
            .map(|p| p.0.log2())
            .fold(f64::NEG_INFINITY, f64::max);
        (lo.floor(), hi.ceil().max(lo.floor() + 1.0))
    };
    let (y0, y1) = if all.is_empty() {
        (6.0, 9.0)
    } else {
        let lo = all
            .iter()
            .map(|p| p.1.log10())
            .fold(f64::INFINITY, f64::min);
        let hi = all
            .iter()
            .map(|p| p.1.log10())
            .fold(f64::NEG_INFINITY, f64::max);
        (lo.floor(), hi.ceil().max(lo.floor() + 1.0))
    };
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let px = |x: f64| LEFT + (x.log2() - x0) / (x1 - x0) * pw;
    let py = |y: f64| TOP + ph - (y.log10() - y0) / (y1 - y0) * ph;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect x="0" y="0" width="{W}" height="{H}" fill="white"/>
<text x="{}" y="26" text-anchor="middle" font-size="16">{}</text>"#,
        LEFT + pw / 2.0,
        esc(title)
    );
    // Grid and ticks: every power of two on x (labelled every other one when
    // crowded), every decade on y.
    let step = if x1 - x0 > 12.0 { 2 } else { 1 };
    for k in (x0 as i64..=x1 as i64).step_by(step) {
        let x = LEFT + (k as f64 - x0) / (x1 - x0) * pw;
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">2^{k}</text>"##,
            TOP + ph,
            TOP + ph + 18.0
        );
    }
    // 1, 2 and 5 times each decade while there are few decades.
    let mantissas: &[f64] = if y1 - y0 <= 3.0 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    for k in y0 as i64..=y1 as i64 {
        for &m in mantissas {
            let v = k as f64 + m.log10();
            if v > y1 + 1e-9 {
                break;
            }
            let y = TOP + ph - (v - y0) / (y1 - y0) * ph;
            let shade = if m == 1.0 { "#ccc" } else { "#eee" };
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{shade}"/><text x="{:.1}" y="{:.1}" text-anchor="end">{m}e{k}</text>"##,
                LEFT + pw,
                LEFT - 6.0,
                y + 4.0
            );
        }
    }
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>
<text x="{:.1}" y="{:.1}" text-anchor="middle">tensor size (f32 elements, log scale)</text>
<text x="20" y="{:.1}" text-anchor="middle" transform="rotate(-90 20 {:.1})">params/s (log scale)</text>"##,
        LEFT + pw / 2.0,
        H - 20.0,
        TOP + ph / 2.0,
        TOP + ph / 2.0
    );
    for (ai, oi, pts, mix) in &series {
        let color = COLORS[oi % COLORS.len()];
        let dash = DASHES[ai % DASHES.len()];
        let dash_attr = if dash.is_empty() {
            String::new()
        } else {
            format!(r#" stroke-dasharray="{dash}""#)
        };
        let label = format!("{} on {}", names[*oi], reports[*ai].label());
        if pts.len() > 1 {
            let coords: Vec<String> = pts
                .iter()
                .map(|p| format!("{:.1},{:.1}", px(p.0), py(p.1)))
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"{dash_attr}><title>{}</title></polyline>"#,
                coords.join(" "),
                esc(&label)
            );
        }
        for p in pts {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"><title>{}: {} elements, {:.3e} params/s</title></circle>"#,
                px(p.0),
                py(p.1),
                esc(&label),
                fmt_size(p.0 as u64),
                p.1
            );
        }
        if let Some(p) = mix {
            let (cx, cy) = (px(p.0), py(p.1));
            let _ = writeln!(
                s,
                r#"<path d="M {:.1} {cy:.1} L {cx:.1} {:.1} L {:.1} {cy:.1} L {cx:.1} {:.1} Z" fill="white" stroke="{color}" stroke-width="1.5"><title>{} GPT-2-like mix: {:.3e} params/s</title></path>"#,
                cx - 5.0,
                cy - 5.0,
                cx + 5.0,
                cy + 5.0,
                esc(&label),
                p.1
            );
        }
    }
    // Legend: colors for optimizers, dash patterns for adapters.
    let lx = W - RIGHT + 20.0;
    let mut ly = TOP + 10.0;
    let _ = writeln!(
        s,
        r#"<text x="{lx}" y="{ly}" font-weight="bold">optimizer</text>"#
    );
    for (oi, name) in names.iter().enumerate() {
        ly += 18.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="2"/><text x="{:.1}" y="{ly:.1}">{}</text>"#,
            ly - 4.0,
            lx + 28.0,
            ly - 4.0,
            COLORS[oi % COLORS.len()],
            lx + 36.0,
            esc(name)
        );
    }
    ly += 30.0;
    let _ = writeln!(
        s,
        r#"<text x="{lx}" y="{ly}" font-weight="bold">adapter</text>"#
    );
    for (ai, a) in reports.iter().enumerate() {
        ly += 18.0;
        let dash = DASHES[ai % DASHES.len()];
        let _ = writeln!(
            s,
            r##"<line x1="{lx}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#333" stroke-width="2" stroke-dasharray="{}"/><text x="{:.1}" y="{ly:.1}">{}</text>"##,
            ly - 4.0,
            lx + 28.0,
            ly - 4.0,
            if dash.is_empty() { "none" } else { dash },
            lx + 36.0,
            esc(&truncate(&a.label(), 34))
        );
    }
    ly += 30.0;
    let _ = writeln!(
        s,
        r##"<path d="M {:.1} {:.1} l 5 -5 l 5 5 l -5 5 Z" fill="white" stroke="#333"/><text x="{:.1}" y="{ly:.1}">GPT-2-like mix (50 tensors)</text>"##,
        lx + 9.0,
        ly - 4.0,
        lx + 36.0
    );
    s.push_str("</svg>\n");
    s
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}
