//! bench.svg: one panel per test (pp, tg), bars per backend, upstream and ember side by side
//! (median tokens/s), each labelled with its value and the panel with the median ratio.

use crate::bench::Row;

const COLORS: [(&str, &str); 2] = [("upstream", "#8c8c8c"), ("ember", "#d9480f")];

pub fn tokens_per_backend(rows: &[Row], model: &str, threads: u32, rounds: u32) -> String {
    let tests = [("pp", "prompt processing"), ("tg", "token generation")];
    let (pw, ph, left, top, gap) = (360.0, 260.0, 60.0, 72.0, 40.0);
    let width = left + tests.len() as f64 * (pw + gap);
    let height = top + ph + 70.0;
    let mut svg = String::new();
    let mut put = |s: String| {
        svg.push_str(&s);
        svg.push('\n');
    };
    put(format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    ));
    put(format!(
        r#"<rect width="{width}" height="{height}" fill="white"/>"#
    ));
    put(format!(
        r#"<text x="{left}" y="20" font-size="15" font-weight="bold">tokens/s per backend: upstream llama-bench vs ember</text>"#
    ));
    put(format!(
        r##"<text x="{left}" y="38" fill="#555">{}, {threads} threads, median of {rounds} rounds</text>"##,
        escape(model)
    ));
    for (i, (test, title)) in tests.iter().enumerate() {
        let x0 = left + i as f64 * (pw + gap);
        let data: Vec<&Row> = rows
            .iter()
            .filter(|r| r.test.starts_with(test) && r.upstream_tps.is_some())
            .collect();
        if data.is_empty() {
            continue;
        }
        let peak = data
            .iter()
            .map(|r| r.upstream_tps.unwrap_or(0.0).max(r.ember_tps))
            .fold(0.0, f64::max)
            * 1.15;
        put(format!(
            r#"<text x="{}" y="{}" text-anchor="middle" font-weight="bold">{title}</text>"#,
            x0 + pw / 2.0,
            top - 8.0
        ));
        put(format!(
            r#"<line x1="{x0}" y1="{0}" x2="{1}" y2="{0}" stroke="black"/>"#,
            top + ph,
            x0 + pw
        ));
        put(format!(
            r#"<line x1="{x0}" y1="{top}" x2="{x0}" y2="{}" stroke="black"/>"#,
            top + ph
        ));
        for k in 0..5 {
            let v = peak * k as f64 / 4.0;
            let y = top + ph - ph * k as f64 / 4.0;
            put(format!(
                r##"<text x="{}" y="{}" text-anchor="end" fill="#555">{v:.0}</text>"##,
                x0 - 4.0,
                y + 4.0
            ));
            if k > 0 {
                put(format!(
                    r##"<line x1="{x0}" y1="{y}" x2="{}" y2="{y}" stroke="#eee"/>"##,
                    x0 + pw
                ));
            }
        }
        let slot = pw / data.len() as f64;
        for (j, r) in data.iter().enumerate() {
            let bw = slot * 0.32;
            for (s, (side, color)) in COLORS.iter().enumerate() {
                let v = if *side == "upstream" {
                    r.upstream_tps.unwrap_or(0.0)
                } else {
                    r.ember_tps
                };
                let h = ph * v / peak;
                let x = x0 + j as f64 * slot + slot * 0.16 + s as f64 * bw;
                put(format!(
                    r#"<rect x="{x:.1}" y="{:.1}" width="{bw:.1}" height="{h:.1}" fill="{color}"><title>{} {} {side}: {v:.2} t/s</title></rect>"#,
                    top + ph - h,
                    r.backend,
                    r.test
                ));
                put(format!(
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{v:.1}</text>"#,
                    x + bw / 2.0,
                    top + ph - h - 4.0
                ));
            }
            let cx = x0 + (j as f64 + 0.5) * slot;
            put(format!(
                r#"<text x="{cx:.1}" y="{}" text-anchor="middle">{} {}</text>"#,
                top + ph + 16.0,
                r.backend,
                r.test
            ));
            put(format!(
                r##"<text x="{cx:.1}" y="{}" text-anchor="middle" fill="#555">ratio {:.3}</text>"##,
                top + ph + 30.0,
                r.median_ratio().unwrap_or(f64::NAN)
            ));
        }
    }
    let ly = top + ph + 52.0;
    for (s, (side, color)) in COLORS.iter().enumerate() {
        let lx = left + s as f64 * 160.0;
        let label = if *side == "upstream" {
            "upstream llama-bench"
        } else {
            "ember (safe wrapper)"
        };
        put(format!(
            r#"<rect x="{lx}" y="{}" width="12" height="12" fill="{color}"/>"#,
            ly - 10.0
        ));
        put(format!(
            r#"<text x="{}" y="{ly}">{label}</text>"#,
            lx + 18.0
        ));
    }
    put(format!(
        r##"<text x="{}" y="{ly}" fill="#555">ratio = median of ember/upstream per round</text>"##,
        left + 340.0
    ));
    put("</svg>".to_string());
    svg
}

/// Text as SVG character data.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}
