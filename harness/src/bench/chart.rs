//! The benchmark chart: one horizontal bar per case (median Mpps) with a min-max whisker,
//! grouped by mode and traffic source, as a standalone SVG; and the NDR/PDR bars of a search.

use super::report::{Report, SearchReport};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Renders the report's on-wire cases.
pub fn svg(r: &Report) -> String {
    let row = 22.0;
    let left = 260.0;
    let width = 900.0;
    let plot = width - left - 90.0;
    let top = 62.0;
    let max = r
        .cases
        .iter()
        .map(|c| c.rate.max_mpps)
        .fold(0.0f64, f64::max)
        .max(0.001);
    let height = top + row * r.cases.len() as f64 + 40.0;
    let x = |v: f64| left + plot * v / max;
    let mut s = open(
        width,
        height,
        "xdpwall: Mpps judged by the DUT (bars: median; whiskers: min to max)",
        &format!(
            "{} runs of {} s, {}-byte frames, {} generator thread(s); {}",
            r.settings.repeats,
            r.settings.duration_s,
            r.settings.frame_size,
            r.settings.threads,
            r.run.machine()
        ),
    );
    for (i, c) in r.cases.iter().enumerate() {
        let y = top + row * i as f64;
        let colour = colour(&c.mode, &c.program);
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{} {} {}</text>\n",
            left - 8.0,
            y + 14.0,
            esc(&c.mode),
            esc(&c.source.to_string()),
            esc(&c.program)
        ));
        s.push_str(&format!(
            "<rect x=\"{left}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\"/>\n",
            y + 3.0,
            x(c.rate.median_mpps) - left,
            row - 6.0
        ));
        s.push_str(&format!(
            "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"black\"/>\n",
            x(c.rate.min_mpps),
            x(c.rate.max_mpps),
            y + row / 2.0,
            y + row / 2.0
        ));
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\">{:.3}</text>\n",
            x(c.rate.max_mpps) + 6.0,
            y + 14.0,
            c.rate.median_mpps
        ));
    }
    s.push_str(&close(
        left,
        plot,
        top + row * r.cases.len() as f64 + 4.0,
        max,
    ));
    s
}

/// The start of a chart: the SVG element, a white ground, a title and a line under it.
fn open(width: f64, height: f64, title: &str, subtitle: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"22\" font-size=\"15\">{}</text>\n\
         <text x=\"10\" y=\"42\">{}</text>\n",
        esc(title),
        esc(subtitle)
    )
}

/// The end of a chart: the Mpps axis from 0 at `left` to `max` at `left + plot`, at height
/// `y`, and the closing tag.
fn close(left: f64, plot: f64, y: f64, max: f64) -> String {
    format!(
        "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"black\"/>\n\
         <text x=\"{left}\" y=\"{:.1}\">0</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{:.2} Mpps</text>\n</svg>\n",
        left + plot,
        y + 16.0,
        left + plot,
        y + 16.0,
        max
    )
}

/// A case's colour: the baseline grey, peers purple (lighter in generic mode), xdpwall blue
/// in native mode and orange in generic mode.
fn colour(mode: &str, program: &str) -> &'static str {
    match (mode, program) {
        (_, "baseline") => "#9e9e9e",
        ("native", p) if is_peer(p) => "#6a3d9a",
        (_, p) if is_peer(p) => "#cab2d6",
        ("native", _) => "#1f77b4",
        _ => "#ff7f0e",
    }
}

/// Whether a case's program is a peer's (not xdpwall's).
fn is_peer(program: &str) -> bool {
    program.starts_with("xdp-filter")
}

/// The SVG of a search report: per mode and program, NDR (solid) and PDR (pale) bars, with the
/// flat-out rate as a tick.
pub fn search_svg(r: &SearchReport) -> String {
    let row = 24.0;
    let left = 200.0;
    let width = 900.0;
    let plot = width - left - 110.0;
    let top = 66.0;
    let max = r
        .cases
        .iter()
        .map(|c| (c.max.offered_pps / 1e6).max(c.pdr.mpps))
        .fold(0.0f64, f64::max)
        .max(0.001);
    let height = top + row * r.cases.len() as f64 + 44.0;
    let x = |v: f64| left + plot * v / max;
    let mut s = open(
        width,
        height,
        &format!(
            "xdpwall: NDR (solid) and PDR at {}% loss (pale); tick: flat out",
            r.cases
                .first()
                .map_or(0.0, |c| c.pdr.loss_ratio_allowed * 100.0)
        ),
        &format!(
            "{}-byte frames, trials of {} s, confirmed for {} s; DUT on CPU {}; {}",
            r.frame_size,
            r.trial_s,
            r.final_trial_s,
            r.dut_cpu.map_or("-".into(), |c| c.to_string()),
            r.run.machine()
        ),
    );
    for (i, c) in r.cases.iter().enumerate() {
        let y = top + row * i as f64;
        let colour = colour(&c.mode, &c.program);
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{} {}</text>\n\
             <rect x=\"{left}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\" fill-opacity=\"0.35\"/>\n\
             <rect x=\"{left}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\"/>\n\
             <line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"black\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\">{:.3} / {:.3}</text>\n",
            left - 8.0,
            y + 15.0,
            esc(&c.mode),
            esc(&c.program),
            y + 3.0,
            x(c.pdr.mpps) - left,
            row - 6.0,
            y + 3.0,
            x(c.ndr.mpps) - left,
            row - 6.0,
            x(c.max.offered_pps / 1e6),
            x(c.max.offered_pps / 1e6),
            y + 1.0,
            y + row - 1.0,
            x(max) + 6.0,
            y + 15.0,
            c.ndr.mpps,
            c.pdr.mpps
        ));
    }
    s.push_str(&close(
        left,
        plot,
        top + row * r.cases.len() as f64 + 4.0,
        max,
    ));
    s
}

/// The latency SVG of a search report: per mode a panel of percentile lines (min, p50, p90,
/// p99, p99.9, max on the x axis; microseconds on a log scale), one line per program and
/// load: the load by colour (pale: no load, dark: 90% of the NDR), the baseline dashed.
pub fn latency_svg(r: &SearchReport) -> String {
    // Blues in native mode, oranges in generic (as the other charts), pale to dark by load.
    const NATIVE: [&str; 4] = ["#9ecae1", "#6baed6", "#3182bd", "#08306b"];
    const GENERIC: [&str; 4] = ["#fdd0a2", "#fd8d3c", "#e6550d", "#7f2704"];
    let names = ["min", "p50", "p90", "p99", "p99.9", "max"];
    let (left, width, top, panel) = (90.0, 1000.0, 70.0, 250.0);
    let plot = width - left - 290.0;
    let modes: Vec<&str> = {
        let mut m: Vec<&str> = r.latency.iter().map(|c| c.mode.as_str()).collect();
        m.dedup();
        m
    };
    let values = |p: &super::report::LatencyPoint| {
        [p.min_us, p.p50_us, p.p90_us, p.p99_us, p.p999_us, p.max_us]
    };
    let all: Vec<f64> = r
        .latency
        .iter()
        .flat_map(|c| c.points.iter().flat_map(values))
        .flatten()
        .filter(|v| *v > 0.0)
        .collect();
    let lo = all
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .max(1e-3)
        .log10()
        .floor();
    let hi = all
        .iter()
        .copied()
        .fold(0.0, f64::max)
        .max(1e-2)
        .log10()
        .ceil()
        .max(lo + 1.0);
    let height = top + (panel + 40.0) * modes.len() as f64 + 20.0;
    let mut s = open(
        width,
        height,
        "xdpwall: one-way latency of passed frames through a forwarding DUT (µs, log scale)",
        &format!(
            "pale: no load ... dark: 90% of NDR; solid: filter, dashed: baseline; \
             {}-byte frames, {} s per load; {}",
            r.frame_size,
            r.final_trial_s,
            r.run.machine()
        ),
    );
    let x = |k: usize| left + plot * k as f64 / (names.len() - 1) as f64;
    for (m, mode) in modes.iter().enumerate() {
        let y0 = top + (panel + 40.0) * m as f64;
        let y = |v: f64| y0 + panel - panel * (v.log10() - lo) / (hi - lo);
        s.push_str(&format!(
            "<text x=\"{left}\" y=\"{:.1}\" font-weight=\"bold\">{} mode</text>\n\
             <line x1=\"{left}\" x2=\"{left}\" y1=\"{y0:.1}\" y2=\"{:.1}\" stroke=\"black\"/>\n\
             <line x1=\"{left}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"black\"/>\n",
            y0 - 6.0,
            esc(mode),
            y0 + panel,
            left + plot,
            y0 + panel,
            y0 + panel
        ));
        let mut decade = lo;
        while decade <= hi {
            let v = 10f64.powf(decade);
            s.push_str(&format!(
                "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#dddddd\"/>\n\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{} µs</text>\n",
                left + plot,
                y(v),
                y(v),
                left - 6.0,
                y(v) + 4.0,
                if v < 1.0 {
                    format!("{v}")
                } else {
                    format!("{v:.0}")
                }
            ));
            decade += 1.0;
        }
        for (k, n) in names.iter().enumerate() {
            s.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{n}</text>\n",
                x(k),
                y0 + panel + 16.0
            ));
        }
        let mut legend = 0;
        for c in r.latency.iter().filter(|c| c.mode == *mode) {
            let dash = if c.program == "baseline" {
                " stroke-dasharray=\"6 4\""
            } else {
                ""
            };
            for (i, p) in c.points.iter().enumerate() {
                let pts: Vec<String> = values(p)
                    .iter()
                    .enumerate()
                    .filter_map(|(k, v)| {
                        v.filter(|v| *v > 0.0)
                            .map(|v| format!("{:.1},{:.1}", x(k), y(v)))
                    })
                    .collect();
                let shades = if *mode == "generic" { GENERIC } else { NATIVE };
                let colour = shades[i.min(shades.len() - 1)];
                s.push_str(&format!(
                    "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/>\n",
                    pts.join(" ")
                ));
                let ly = y0 + 12.0 + 16.0 * legend as f64;
                legend += 1;
                s.push_str(&format!(
                    "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/>\n\
                     <text x=\"{:.1}\" y=\"{:.1}\">{} {} ({:.3} Mpps)</text>\n",
                    left + plot + 16.0,
                    left + plot + 44.0,
                    ly - 4.0,
                    ly - 4.0,
                    left + plot + 50.0,
                    ly,
                    esc(&c.program),
                    esc(&p.load),
                    p.offered_pps / 1e6
                ));
            }
        }
    }
    s.push_str("</svg>\n");
    s
}
