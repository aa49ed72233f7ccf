//! `azr-trainer report RUN [RUN…]`: the curves of self-play runs, side by side, as a PNG and
//! as a table.
//!
//! A claim that self-play learns needs its control (the same seeds at lr 0) on the same axes;
//! this draws any number of runs over each other. Per step, from `metrics.jsonl`: each
//! group's format-valid rate and mean reward, the proposers' valid rate, the solvers' solve
//! rate, the fraction of groups whose rewards were all equal (no gradient) and the step time.
//! The table gives each solver group's first and last values and a bootstrap 95 % interval of
//! the mean over the last steps, the figure to compare between a run and its control.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use plotters::prelude::*;
use rand::{RngExt, SeedableRng};
use serde_json::Value;

use crate::selfplay::metrics::{GroupRecord, StepRecord};

/// One run's step records.
pub struct Run {
    pub name: String,
    pub steps: Vec<StepRecord>,
}

/// Reads `RUN/metrics.jsonl` (or a metrics file named directly); events are skipped.
pub fn load(path: &Path) -> Result<Run> {
    let file = if path.is_dir() {
        path.join("metrics.jsonl")
    } else {
        path.to_owned()
    };
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let mut steps = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not JSON", file.display(), n + 1))?;
        if v.get("step").is_some() && v.get("groups").is_some() {
            steps.push(
                serde_json::from_value(v)
                    .with_context(|| format!("{}:{}: not a step record", file.display(), n + 1))?,
            );
        }
    }
    let name = if path.is_dir() {
        path
    } else {
        path.parent().unwrap_or(path)
    }
    .file_name()
    .map(|n| n.to_string_lossy().into_owned())
    .unwrap_or_else(|| file.display().to_string());
    Ok(Run { name, steps })
}

/// What each panel shows: its title, the groups it has one line per (empty: one line per
/// run), and how a step record gives the value.
struct Panel {
    title: &'static str,
    groups: &'static [&'static str],
    value: fn(&StepRecord, Option<&str>) -> Option<f64>,
    unit: (f64, f64),
}

const SOLVERS: &[&str] = &["pred_code_o", "pred_code_i", "pred_code_f"];
const PROPOSERS: &[&str] = &["gen_code_o", "gen_code_i", "gen_code_f"];
const ALL_GROUPS: &[&str] = &[
    "pred_code_o",
    "pred_code_i",
    "pred_code_f",
    "gen_code_o",
    "gen_code_i",
    "gen_code_f",
];

fn group<'a>(step: &'a StepRecord, group: Option<&str>) -> Option<&'a GroupRecord> {
    let g = step.groups.get(group?)?;
    (g.rollouts > 0).then_some(g)
}

fn format_valid(step: &StepRecord, g: Option<&str>) -> Option<f64> {
    Some(1.0 - group(step, g)?.format_error_rate?)
}

fn mean_reward(step: &StepRecord, g: Option<&str>) -> Option<f64> {
    group(step, g)?.mean_reward
}

fn valid_rate(step: &StepRecord, g: Option<&str>) -> Option<f64> {
    group(step, g)?.valid_rate
}

fn solve_rate(step: &StepRecord, g: Option<&str>) -> Option<f64> {
    group(step, g)?.solve_rate
}

fn zero_variance(step: &StepRecord, _: Option<&str>) -> Option<f64> {
    step.zero_variance_groups
}

fn step_seconds(step: &StepRecord, _: Option<&str>) -> Option<f64> {
    Some(step.time.total_s)
}

fn panels() -> [Panel; 6] {
    [
        Panel {
            title: "format-valid rate",
            groups: ALL_GROUPS,
            value: format_valid,
            unit: (0.0, 1.0),
        },
        Panel {
            title: "mean reward",
            groups: ALL_GROUPS,
            value: mean_reward,
            unit: (-1.0, 1.0),
        },
        Panel {
            title: "valid proposals",
            groups: PROPOSERS,
            value: valid_rate,
            unit: (0.0, 1.0),
        },
        Panel {
            title: "solve rate (accuracy)",
            groups: SOLVERS,
            value: solve_rate,
            unit: (0.0, 1.0),
        },
        Panel {
            title: "groups with zero reward variance",
            groups: &[],
            value: zero_variance,
            unit: (0.0, 1.0),
        },
        Panel {
            title: "step time (s)",
            groups: &[],
            value: step_seconds,
            unit: (0.0, 0.0),
        },
    ]
}

/// `(step, value)` of one line.
fn series(run: &Run, panel: &Panel, g: Option<&str>) -> Vec<(f64, f64)> {
    run.steps
        .iter()
        .filter_map(|s| Some((s.step as f64, (panel.value)(s, g)?)))
        .collect()
}

/// The font the chart's text is drawn with (plotters' `ab_glyph` backend needs one).
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

fn register_font() -> Result<()> {
    let path = std::env::var_os("AZR_REPORT_FONT")
        .map(PathBuf::from)
        .into_iter()
        .chain(FONTS.iter().map(PathBuf::from))
        .find(|p| p.exists());
    let Some(path) = path else {
        bail!(
            "no font for the chart's text: install Debian's fonts-dejavu-core \
             (scripts/apt-deps.sh trainer) or set AZR_REPORT_FONT to a .ttf file"
        );
    };
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    // plotters keeps the font for the process's life.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow::anyhow!("{} is not a font plotters can read", path.display()))?;
    Ok(())
}

/// Draws the six panels, every run (and group) a line.
pub fn draw(runs: &[Run], out: &Path) -> Result<()> {
    register_font()?;
    let root = BitMapBackend::new(out, (1800, 1100)).into_drawing_area();
    root.fill(&WHITE)?;
    let cells = root.split_evenly((2, 3));
    let last_step = runs
        .iter()
        .flat_map(|r| r.steps.iter())
        .map(|s| s.step as f64)
        .fold(1.0f64, f64::max);
    for (cell, panel) in cells.iter().zip(panels()) {
        let mut lines = Vec::new();
        for (r, run) in runs.iter().enumerate() {
            let groups: Vec<Option<&str>> = if panel.groups.is_empty() {
                vec![None]
            } else {
                panel.groups.iter().map(|g| Some(*g)).collect()
            };
            for (k, g) in groups.into_iter().enumerate() {
                let points = series(run, &panel, g);
                if points.is_empty() {
                    continue;
                }
                let label = match g {
                    Some(g) => format!("{} {g}", run.name),
                    None => run.name.clone(),
                };
                lines.push((r, k, label, points));
            }
        }
        let (lo, hi) = if panel.unit.0 < panel.unit.1 {
            panel.unit
        } else {
            let top = lines
                .iter()
                .flat_map(|l| l.3.iter().map(|p| p.1))
                .fold(1.0f64, f64::max);
            (0.0, top * 1.1)
        };
        let mut chart = ChartBuilder::on(cell)
            .caption(panel.title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(45)
            .build_cartesian_2d(0f64..last_step.max(1.0), lo..hi)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .label_style(("sans-serif", 14))
            .draw()?;
        for (r, k, label, points) in lines {
            // A colour per group; the first run drawn bold, the others (its control) faint.
            let hue = if panel.groups.is_empty() { r } else { k };
            let color = Palette99::pick(hue).mix(if r == 0 { 1.0 } else { 0.4 });
            let style = ShapeStyle {
                color: color.to_rgba(),
                filled: true,
                stroke_width: if r == 0 { 3 } else { 2 },
            };
            chart
                .draw_series(LineSeries::new(points.iter().copied(), style))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
        }
        chart
            .configure_series_labels()
            .label_font(("sans-serif", 12))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

/// Mean of `xs` and a bootstrap 95 % interval of it (2,000 resamples, fixed seed).
pub fn bootstrap_mean(xs: &[f64]) -> Option<(f64, f64, f64)> {
    if xs.is_empty() {
        return None;
    }
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5EED);
    let mut means: Vec<f64> = (0..2000)
        .map(|_| {
            (0..xs.len())
                .map(|_| xs[rng.random_range(0..xs.len())])
                .sum::<f64>()
                / xs.len() as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    Some((mean, means[50], means[1949]))
}

/// The table: per run and solver group, format-valid rate and mean reward at the first and
/// last step, and over the last `last` steps with a bootstrap interval; the zero-variance
/// fraction and the median step time.
pub fn table(runs: &[Run], last: usize) -> String {
    let mut out = String::new();
    let fmt = |x: Option<f64>| x.map_or("-".to_owned(), |v| format!("{v:.2}"));
    out.push_str(&format!(
        "{:<24} {:<12} {:>6} {:>6} {:>22} {:>6} {:>6} {:>22}\n",
        "run",
        "group",
        "fmt@1",
        "fmt@N",
        format!("fmt last {last} [95% CI]"),
        "rew@1",
        "rew@N",
        format!("reward last {last} [95% CI]"),
    ));
    for run in runs {
        let groups: Vec<&str> = ALL_GROUPS
            .iter()
            .copied()
            .filter(|g| run.steps.iter().any(|s| group(s, Some(g)).is_some()))
            .collect();
        for g in groups {
            let values = |f: fn(&StepRecord, Option<&str>) -> Option<f64>| -> Vec<f64> {
                run.steps.iter().filter_map(|s| f(s, Some(g))).collect()
            };
            let (fv, rw) = (values(format_valid), values(mean_reward));
            let tail = |v: &[f64]| {
                let t = &v[v.len().saturating_sub(last)..];
                bootstrap_mean(t).map_or("-".to_owned(), |(m, lo, hi)| {
                    format!("{m:.2} [{lo:.2}, {hi:.2}]")
                })
            };
            out.push_str(&format!(
                "{:<24} {:<12} {:>6} {:>6} {:>22} {:>6} {:>6} {:>22}\n",
                run.name,
                g,
                fmt(fv.first().copied()),
                fmt(fv.last().copied()),
                tail(&fv),
                fmt(rw.first().copied()),
                fmt(rw.last().copied()),
                tail(&rw),
            ));
        }
        let zv: Vec<f64> = run
            .steps
            .iter()
            .filter_map(|s| zero_variance(s, None))
            .collect();
        let mut times: Vec<f64> = run
            .steps
            .iter()
            .filter_map(|s| step_seconds(s, None))
            .collect();
        times.sort_by(f64::total_cmp);
        out.push_str(&format!(
            "{:<24} {} steps; zero-variance groups {} → {}; median step {:.0} s\n",
            run.name,
            run.steps.len(),
            fmt(zv.first().copied()),
            fmt(zv.last().copied()),
            times.get(times.len() / 2).copied().unwrap_or(f64::NAN),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(n: u64, format_error: f64, reward: f64) -> StepRecord {
        serde_json::from_value(serde_json::json!({
            "step": n,
            "groups": {"pred_code_o": {"rollouts": 4, "format_error_rate": format_error,
                                        "mean_reward": reward, "solve_rate": 0.5}},
            "zero_variance_groups": 0.5,
            "time": {"total_s": 10.0},
        }))
        .expect("a step record")
    }

    #[test]
    fn the_committed_runs_metrics_read_as_typed_step_records() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("results/selfplay-tiny-2026-11-30");
        for entry in std::fs::read_dir(&dir).expect("the committed run") {
            let path = entry.expect("entry").path();
            if path.join("metrics.jsonl").is_file() {
                let run = load(&path).expect("readable");
                assert!(!run.steps.is_empty(), "{}", path.display());
                assert!(
                    run.steps
                        .iter()
                        .all(|s| s.groups.contains_key("pred_code_o"))
                );
            }
        }
    }

    #[test]
    fn the_table_gives_first_last_and_an_interval_over_the_last_steps() {
        let run = Run {
            name: "run".into(),
            steps: (1..=10)
                .map(|n| step(n, 1.0 - n as f64 / 10.0, 0.0))
                .collect(),
        };
        let t = table(&[run], 4);
        assert!(t.contains("pred_code_o"), "{t}");
        // format-valid 0.10 at step 1, 1.00 at step 10, mean of the last 4 = 0.85.
        assert!(
            t.contains("0.10") && t.contains("1.00") && t.contains("0.85 ["),
            "{t}"
        );
    }

    #[test]
    fn a_bootstrap_interval_holds_the_mean_and_is_empty_for_no_data() {
        let (m, lo, hi) = bootstrap_mean(&[0.0, 1.0, 0.5, 0.5]).unwrap();
        assert!(lo <= m && m <= hi && lo >= 0.0 && hi <= 1.0);
        assert!(bootstrap_mean(&[]).is_none());
    }
}
