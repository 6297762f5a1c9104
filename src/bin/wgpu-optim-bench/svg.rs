//! The SVG chart, drawn with plotters: params/s (log scale) against tensor
//! size (log scale), one line per optimizer and adapter, from the
//! single-tensor runs; the GPT-2-like mix as an open diamond at its parameter
//! count. Colors tell optimizers apart, dash patterns adapters.

use plotters::element::{ComposedElement, DashedPathElement};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::report::AdapterReport;
use crate::suite::optimizers;

const W: u32 = 960;
const H: u32 = 600;
/// Width of the legend column on the right.
const RIGHT: u32 = 300;
/// Font sizes: plotters writes `font-size` as the (whole) size given over
/// 1.24, so these give about 12 and 16 pixels.
const FONT: f64 = 15.0;
const TITLE_FONT: f64 = 20.0;

/// One color per optimizer row, in [`optimizers`] order: Tableau's 10 and
/// fourteen darker or lighter ones, 24 distinct colors for the 21 rows of
/// today (a 25th would reuse the first).
const COLORS: [RGBColor; 24] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x17, 0xbe, 0xcf),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x0b, 0x3d, 0x91),
    RGBColor(0x80, 0x00, 0x26),
    RGBColor(0x00, 0x5f, 0x3a),
    RGBColor(0x4b, 0x00, 0x82),
    RGBColor(0xa0, 0x52, 0x00),
    RGBColor(0x00, 0x6d, 0x77),
    RGBColor(0x6b, 0x8e, 0x23),
    RGBColor(0xc7, 0x15, 0x85),
    RGBColor(0x46, 0x82, 0xb4),
    RGBColor(0xb8, 0x86, 0x0b),
    RGBColor(0x2f, 0x4f, 0x4f),
    RGBColor(0xff, 0x45, 0x00),
    RGBColor(0x9a, 0xcd, 0x32),
    RGBColor(0x8b, 0x00, 0x8b),
];
/// One dash pattern per adapter: (dash, gap) in pixels, (0, 0) solid.
const DASHES: [(u32, u32); 5] = [(0, 0), (8, 4), (2, 3), (14, 4), (4, 4)];
const INK: RGBColor = RGBColor(0x33, 0x33, 0x33);

/// The single-tensor points and the mix point of one optimizer on one adapter.
struct Series {
    adapter: usize,
    optimizer: usize,
    points: Vec<(f64, f64)>,
    mix: Option<(f64, f64)>,
}

/// The chart of `reports` as a standalone SVG document.
pub fn render(reports: &[AdapterReport], title: &str) -> Result<String, String> {
    let mut svg = String::new();
    draw(&mut svg, reports, title).map_err(|e| format!("cannot draw the chart: {e}"))?;
    Ok(format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{svg}"))
}

fn drawable(p: &(f64, f64)) -> bool {
    p.0 > 0.0 && p.1 > 0.0 && p.0.is_finite() && p.1.is_finite()
}

fn collect(reports: &[AdapterReport], names: &[&str]) -> Vec<Series> {
    let mut series = Vec::new();
    for (adapter, a) in reports.iter().enumerate() {
        for (optimizer, name) in names.iter().enumerate() {
            let fused = |layout: &'static str| {
                a.measurements.iter().filter(move |m| {
                    m.optimizer == *name && m.layout == layout && m.dispatch == "fused"
                })
            };
            let mut points: Vec<(f64, f64)> = fused("single")
                .map(|m| (m.params as f64, m.params_per_s))
                .filter(drawable)
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mix = fused("gpt2_like")
                .map(|m| (m.params as f64, m.params_per_s))
                .find(drawable);
            if !points.is_empty() || mix.is_some() {
                series.push(Series {
                    adapter,
                    optimizer,
                    points,
                    mix,
                });
            }
        }
    }
    series
}

/// The whole exponents around the exponents `values`, at least one apart
/// (`default` when there are none): an axis range.
fn exponent_range(values: impl Iterator<Item = f64>, default: (f64, f64)) -> (i32, i32) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { default };
    let lo = lo.floor();
    (lo as i32, hi.ceil().max(lo + 1.0) as i32)
}

/// `2e6` for 2,000,000: the mantissa and decade of a y tick.
fn decade_label(v: f64) -> String {
    let k = (v.log10() + 1e-9).floor();
    format!("{}e{k}", (v / 10f64.powf(k)).round())
}

fn draw(
    svg: &mut String,
    reports: &[AdapterReport],
    title: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let names: Vec<&str> = optimizers().iter().map(|o| o.0).collect();
    let series = collect(reports, &names);
    let all = || series.iter().flat_map(|s| s.points.iter().chain(&s.mix));
    let (x0, x1) = exponent_range(all().map(|p| p.0.log2()), (16.0, 24.0));
    let (y0, y1) = exponent_range(all().map(|p| p.1.log10()), (6.0, 9.0));

    // Ticks: every power of two on x (labelled every other one when crowded,
    // the rest as light grid lines); every decade on y, with 2 and 5 times
    // each decade while there are few decades.
    let step = if x1 - x0 > 12 { 2 } else { 1 };
    let (x_bold, x_light): (Vec<i32>, Vec<i32>) = (x0..=x1).partition(|k| (k - x0) % step == 0);
    let mantissas: &[f64] = if y1 - y0 <= 3 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    let y_ticks: Vec<f64> = (y0..=y1)
        .flat_map(|k| mantissas.iter().map(move |m| m * 10f64.powi(k)))
        .filter(|&v| v <= 10f64.powi(y1) * (1.0 + 1e-9))
        .collect();
    let x_axis = (2f64.powi(x0)..2f64.powi(x1))
        .log_scale()
        .base(2.0)
        .with_key_points(x_bold.iter().map(|&k| 2f64.powi(k)).collect())
        .with_light_points(x_light.iter().map(|&k| 2f64.powi(k)));
    let y_axis = (10f64.powi(y0)..10f64.powi(y1))
        .log_scale()
        .with_key_points(y_ticks);

    let root = SVGBackend::with_string(svg, (W, H)).into_drawing_area();
    root.fill(&WHITE)?;
    let (plot_area, legend_area) = root.split_horizontally(W - RIGHT);
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(title, ("sans-serif", TITLE_FONT))
        .margin(10)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(x_axis, y_axis)?;
    chart
        .configure_mesh()
        .x_desc("tensor size (f32 elements, log scale)")
        .y_desc("params/s (log scale)")
        .x_label_formatter(&|x| format!("2^{}", x.log2().round()))
        .y_label_formatter(&|y| decade_label(*y))
        .bold_line_style(RGBColor(0xcc, 0xcc, 0xcc))
        .light_line_style(RGBColor(0xee, 0xee, 0xee))
        .axis_style(INK)
        .label_style(("sans-serif", FONT))
        .axis_desc_style(("sans-serif", FONT))
        .draw()?;

    for s in &series {
        let color = COLORS[s.optimizer % COLORS.len()];
        let line = color.stroke_width(2);
        match DASHES[s.adapter % DASHES.len()] {
            _ if s.points.len() < 2 => {}
            (0, _) => {
                chart.draw_series(LineSeries::new(s.points.iter().copied(), line))?;
            }
            (dash, gap) => {
                chart.draw_series(DashedLineSeries::new(
                    s.points.iter().copied(),
                    dash,
                    gap,
                    line,
                ))?;
            }
        }
        chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        if let Some(p) = s.mix {
            chart.draw_series(std::iter::once(diamond(p, color)))?;
        }
    }

    // Legend: colors for optimizers, dash patterns for adapters.
    let heading = ("sans-serif", FONT)
        .into_font()
        .style(FontStyle::Bold)
        .color(&BLACK);
    let entry =
        TextStyle::from(("sans-serif", FONT).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    let lx = 20;
    let mut ly = 50;
    legend_area.draw(&Text::new("optimizer", (lx, ly), heading.clone()))?;
    ly += 10;
    for (oi, name) in names.iter().enumerate() {
        ly += 18;
        legend_area.draw(&PathElement::new(
            vec![(lx, ly), (lx + 28, ly)],
            COLORS[oi % COLORS.len()].stroke_width(2),
        ))?;
        legend_area.draw(&Text::new(*name, (lx + 36, ly), entry.clone()))?;
    }
    ly += 22;
    legend_area.draw(&Text::new("adapter", (lx, ly), heading))?;
    ly += 10;
    for (ai, a) in reports.iter().enumerate() {
        ly += 18;
        let swatch = vec![(lx, ly), (lx + 28, ly)];
        match DASHES[ai % DASHES.len()] {
            (0, _) => legend_area.draw(&PathElement::new(swatch, INK.stroke_width(2)))?,
            (dash, gap) => legend_area.draw(&DashedPathElement::new(
                swatch,
                dash,
                gap,
                INK.stroke_width(2),
            ))?,
        }
        let label = truncate(&a.label(), 34);
        legend_area.draw(&Text::new(label, (lx + 36, ly), entry.clone()))?;
    }
    ly += 30;
    legend_area.draw(&diamond((lx + 14, ly), INK))?;
    legend_area.draw(&Text::new(
        "GPT-2-like mix (50 tensors)",
        (lx + 36, ly),
        entry,
    ))?;
    root.present()?;
    Ok(())
}

/// A white filled diamond and its outline, in pixels around the anchor.
type Diamond<C, DB> = ComposedElement<C, DB, Polygon<(i32, i32)>, PathElement<(i32, i32)>>;

/// An open diamond, 5 pixels from center to tip, centered on `at`.
fn diamond<C, DB: DrawingBackend>(at: C, color: RGBColor) -> Diamond<C, DB> {
    let tips = [(0, -5), (5, 0), (0, 5), (-5, 0)];
    EmptyElement::at(at)
        + Polygon::new(tips.to_vec(), WHITE)
        + PathElement::new([&tips[..], &tips[..1]].concat(), color.stroke_width(2))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::{CopyRef, Measurement, TimingMethod};

    fn measurement(optimizer: &str, layout: &str, params: u64, params_per_s: f64) -> Measurement {
        Measurement {
            optimizer: optimizer.to_string(),
            layout: layout.to_string(),
            tensors: 1,
            params,
            dispatch: "fused".to_string(),
            dispatches_per_step: 1,
            param_dtype: "f32".into(),
            state_dtype: "f32".into(),
            master: false,
            param_update: "nearest".into(),
            bytes_per_param: 16.0,
            device_bytes_per_param: 16.0,
            reps: 1,
            time_s: params as f64 / params_per_s,
            wall_s: params as f64 / params_per_s,
            gpu_s: None,
            params_per_s,
            gb_per_s: 1.0,
            copy: CopyRef {
                bytes: 1,
                time_s: 1.0,
                gb_per_s: 1.0,
            },
            ratio_to_copy: 1.0,
            baseline: None,
            ratio_to_baseline: None,
            gflop_per_s: None,
        }
    }

    fn adapter(name: &str, speed: f64) -> AdapterReport {
        let mut measurements = Vec::new();
        for (i, (opt, _)) in optimizers().iter().enumerate() {
            let pps = speed * (1.0 + i as f64 / 10.0);
            for k in [16, 18, 20] {
                measurements.push(measurement(opt, "single", 1 << k, pps * k as f64 / 16.0));
            }
            measurements.push(measurement(opt, "gpt2_like", 3_748_864, pps));
        }
        // Not drawable on log axes: left out, not drawn at infinity.
        measurements.push(measurement("adam", "single", 1 << 22, 0.0));
        AdapterReport {
            name: name.to_string(),
            backend: "Vulkan".to_string(),
            device_type: "Cpu".to_string(),
            driver: String::new(),
            driver_info: String::new(),
            vendor: 0,
            device: 0,
            timing: TimingMethod::WallClock,
            timing_note: String::new(),
            max_buffer_size: 1 << 30,
            max_storage_buffer_binding_size: 1 << 27,
            duration_s: 1.0,
            measurements,
        }
    }

    #[test]
    fn two_adapters_get_solid_and_dashed_lines_and_a_legend_each() {
        let reports = [adapter("fast & <first>", 4e8), adapter("slow", 3e5)];
        let svg = render(&reports, "title").unwrap();
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let all = |tag: &'static str| doc.descendants().filter(move |n| n.has_tag_name(tag));
        let texts: Vec<&str> = all("text")
            .filter_map(|n| n.text())
            .map(str::trim)
            .collect();
        for want in [
            "title",
            "Vulkan: fast & <first>",
            "Vulkan: slow",
            "2^16",
            "2^20",
        ] {
            assert!(texts.contains(&want), "{want} in {texts:?}");
        }
        // 3e5 .. 8e8: more than three decades, so decades only.
        for want in ["1e5", "1e6", "1e7", "1e8", "1e9"] {
            assert!(texts.contains(&want), "{want} in {texts:?}");
        }
        assert!(!texts.contains(&"2e8"), "{texts:?}");
        let n = optimizers().len();
        assert_eq!(all("circle").count(), 2 * 3 * n);
        assert_eq!(all("polygon").count(), 2 * n + 1);
        for color in &COLORS[..n] {
            let hex = format!("#{:02X}{:02X}{:02X}", color.0, color.1, color.2);
            let lines = all("polyline")
                .filter(|l| l.attribute("stroke") == Some(hex.as_str()))
                .count();
            // The legend's, the first adapter's solid line, the second's dashes.
            assert!(lines > 3, "{hex}: {lines} polylines");
        }
    }

    #[test]
    fn few_decades_get_ticks_at_two_and_five_times_each() {
        let svg = render(&[adapter("one", 4e8)], "title").unwrap();
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let texts: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .map(str::trim)
            .collect();
        for want in ["1e8", "2e8", "5e8", "1e9"] {
            assert!(texts.contains(&want), "{want} in {texts:?}");
        }
    }

    #[test]
    fn no_measurements_still_give_a_chart() {
        let svg = render(&[], "empty").unwrap();
        let doc = roxmltree::Document::parse(&svg).unwrap();
        assert!(
            doc.descendants()
                .any(|n| n.has_tag_name("text") && n.text().is_some_and(|t| t.trim() == "2^24"))
        );
    }
}
