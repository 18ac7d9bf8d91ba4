//! Trajectory plots (PNG, drawn with plotters).
//!
//! * one component: `x(t)` against time;
//! * two components: the 2-D projection `(x_a, x_b)`;
//! * three components: a 3-D perspective view, the third chosen component vertical.
//!
//! Curves are coloured by time (dark violet at the start → red at the end, with a colour bar),
//! except time series, which are drawn in one colour. Trajectories whose root attribute `kind`
//! is `"map"` are drawn as dots (successive iterates of a map are not joined). At most
//! [`MAX_DRAWN_POINTS`] frames are drawn (evenly decimated, last frame kept); non-finite values
//! break the curve.

use std::ops::Range;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{commit_file, temp_path_for, IoError, Result, Trajectory};

/// Upper bound on the number of frames drawn; longer trajectories are decimated evenly.
pub const MAX_DRAWN_POINTS: usize = 200_000;

/// What to draw and how large.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlotOptions {
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Title; defaults to the root attribute `system`, if any.
    pub title: Option<String>,
    /// Component indices to plot (1, 2 or 3 of them); defaults to the first `min(D, 3)`.
    pub axes: Option<Vec<usize>>,
}

impl Default for PlotOptions {
    fn default() -> Self {
        PlotOptions {
            width: 1200,
            height: 900,
            title: None,
            axes: None,
        }
    }
}

pub(crate) type DrawResult<T = ()> = std::result::Result<T, String>;

fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Draws `traj` into the PNG file `png` (written atomically: temporary name + rename).
pub fn plot_trajectory(traj: &Trajectory, png: &Path, opts: &PlotOptions) -> Result<()> {
    let invalid = |msg: String| IoError::invalid(png, msg);
    let n = traj.time.len();
    if traj.dim == 0 || traj.state.len() != n * traj.dim {
        return Err(invalid(format!(
            "inconsistent trajectory: {n} times, {} state values, dimension {}",
            traj.state.len(),
            traj.dim
        )));
    }
    if n == 0 {
        return Err(invalid("the trajectory has no frames to plot".into()));
    }
    if !(64..=16384).contains(&opts.width) || !(64..=16384).contains(&opts.height) {
        return Err(invalid(format!(
            "image size {}×{} out of range (64..=16384 pixels per side)",
            opts.width, opts.height
        )));
    }
    let axes = opts
        .axes
        .clone()
        .unwrap_or_else(|| (0..traj.dim.min(3)).collect());
    if !(1..=3).contains(&axes.len()) {
        return Err(invalid(format!(
            "{} axes requested; a plot shows 1, 2 or 3 components",
            axes.len()
        )));
    }
    if let Some(&bad) = axes.iter().find(|&&a| a >= traj.dim) {
        return Err(invalid(format!(
            "axis {bad} does not exist: the state has {} components",
            traj.dim
        )));
    }

    let title = opts
        .title
        .clone()
        .or_else(|| traj.attr_str("system").map(str::to_owned))
        .unwrap_or_else(|| "trajectory".to_owned());
    let plot = Plot {
        traj,
        idx: decimate(n, MAX_DRAWN_POINTS),
        axes,
        title,
        dots: traj.attr_str("kind") == Some("map"),
        scale: (f64::from(opts.width) * f64::from(opts.height)).sqrt() / (1200.0f64 * 900.0).sqrt(),
    };

    draw_atomically(png, |tmp| plot.draw(tmp, (opts.width, opts.height)))
}

/// Draws into a temporary PNG next to `png` and renames it into place when complete; on any
/// failure the temporary file is removed and `png` is left untouched.
pub(crate) fn draw_atomically(png: &Path, draw: impl FnOnce(&Path) -> DrawResult) -> Result<()> {
    let tmp = temp_path_for(png, ".tmp", ".png")?;
    super::remove_stale_temporaries(png, ".tmp", ".png");
    let drawn = draw(&tmp)
        .map_err(|msg| IoError::Plot {
            path: png.to_path_buf(),
            msg,
        })
        .and_then(|()| commit_file(&tmp, png));
    if drawn.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    drawn
}

/// Indices `0, s, 2s, …` (and the last one) with `s` chosen to keep at most `max` of them.
pub(super) fn decimate(n: usize, max: usize) -> Vec<usize> {
    let step = n.div_ceil(max).max(1);
    let mut idx: Vec<usize> = (0..n).step_by(step).collect();
    if idx.last() != Some(&(n - 1)) {
        idx.push(n - 1);
    }
    idx
}

/// Colour at `f` ∈ [0, 1] along the time gradient (dark violet → blue → teal → amber → red),
/// dark enough everywhere to read on white.
fn time_colour(f: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (49.0, 104.0, 172.0),
        (25.0, 150.0, 120.0),
        (225.0, 150.0, 0.0),
        (200.0, 30.0, 30.0),
    ];
    let x = f.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let u = x - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |p: f64, q: f64| (p + (q - p) * u).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Finite range of `values`, padded by 4 % (or ±1 / ±10 % if it is a single value).
fn padded_range(values: impl Iterator<Item = f64>) -> Range<f64> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        return -1.0..1.0;
    }
    let pad = if hi > lo {
        0.04 * (hi - lo)
    } else if lo != 0.0 {
        0.1 * lo.abs()
    } else {
        1.0
    };
    (lo - pad)..(hi + pad)
}

/// Tick label on an axis spanning `span`: rounding noise around zero (`5.55e-17`) shows as 0.
fn fmt_tick(v: f64, span: f64) -> String {
    if v.abs() <= 1e-9 * span.abs() {
        "0".into()
    } else {
        fmt_num(v)
    }
}

/// `v` with 4 significant digits (colour-bar end labels: `2249.995` → `2250`).
fn fmt_sig(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 || !(1e-3..1e5).contains(&a) {
        return fmt_num(v);
    }
    let decimals = (3 - a.log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

/// Short, readable number for labels.
fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.2e}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// Drawable pieces of a curve: coloured polylines, or dots.
struct Curve<C> {
    lines: Vec<(Vec<C>, ShapeStyle)>,
    dots: Vec<(C, ShapeStyle)>,
    dot_radius: u32,
}

/// Draws a [`Curve`] on a chart (2-D or 3-D); evaluates to a `DrawResult`.
macro_rules! draw_curve {
    ($chart:expr, $curve:expr) => {{
        let curve = $curve;
        let r = curve.dot_radius;
        $chart
            .draw_series(
                curve
                    .lines
                    .into_iter()
                    .map(|(points, style)| PathElement::new(points, style)),
            )
            .map_err(s)?;
        $chart
            .draw_series(
                curve
                    .dots
                    .into_iter()
                    .map(|(c, style)| Circle::new(c, r, style)),
            )
            .map_err(s)?;
        DrawResult::Ok(())
    }};
}

struct Plot<'a> {
    traj: &'a Trajectory,
    /// Frames to draw.
    idx: Vec<usize>,
    axes: Vec<usize>,
    title: String,
    dots: bool,
    /// Font/line scale relative to a 1200×900 image (geometric mean of the sides).
    scale: f64,
}

impl Plot<'_> {
    fn px(&self, v: f64) -> u32 {
        (v * self.scale).round().max(1.0) as u32
    }

    fn value(&self, k: usize, axis: usize) -> f64 {
        self.traj.state[k * self.traj.dim + self.axes[axis]]
    }

    fn name(&self, axis: usize) -> &str {
        &self.traj.variables[self.axes[axis]]
    }

    fn range(&self, axis: usize) -> Range<f64> {
        padded_range(self.idx.iter().map(|&k| self.value(k, axis)))
    }

    fn time_fraction(&self, k: usize) -> f64 {
        let n = self.traj.time.len();
        if n > 1 {
            k as f64 / (n - 1) as f64
        } else {
            0.0
        }
    }

    fn font(&self, size: f64) -> TextStyle<'static> {
        ("sans-serif", f64::from(self.px(size))).into_font().into()
    }

    fn draw(&self, file: &Path, size: (u32, u32)) -> DrawResult {
        let root = BitMapBackend::new(file, size).into_drawing_area();
        root.fill(&WHITE).map_err(s)?;
        if self.axes.len() == 1 {
            self.draw_time_series(&root)?;
        } else {
            let bar_w = self.px(110.0).min(size.0 / 4);
            let (main, bar) = root.split_horizontally(size.0 - bar_w);
            if self.axes.len() == 2 {
                self.draw_2d(&main)?;
            } else {
                self.draw_3d(&main)?;
            }
            self.draw_colour_bar(&bar)?;
        }
        root.present().map_err(s)
    }

    /// The frames `coord(k)` in order, coloured by time: one polyline per colour band (or
    /// dots for maps); `None` (non-finite) breaks the line.
    fn curve<C: Clone>(&self, coord: impl Fn(usize) -> Option<C>, gradient: bool) -> Curve<C> {
        const BANDS: usize = 256;
        let colour = |band: usize| {
            if gradient {
                time_colour((band as f64 + 0.5) / BANDS as f64)
            } else {
                RGBColor(31, 90, 160)
            }
        };
        let band_of = |k: usize| ((self.time_fraction(k) * BANDS as f64) as usize).min(BANDS - 1);
        let mut curve = Curve {
            lines: Vec::new(),
            dots: Vec::new(),
            dot_radius: self.px(1.0),
        };
        if self.dots {
            curve.dots = self
                .idx
                .iter()
                .filter_map(|&k| coord(k).map(|c| (c, colour(band_of(k)).filled())))
                .collect();
            return curve;
        }
        let width = self.px(1.6);
        let mut line: Vec<C> = Vec::new();
        let mut band = 0;
        let mut flush = |line: &mut Vec<C>, band: usize| {
            if line.len() >= 2 {
                let style = colour(band).stroke_width(width);
                curve.lines.push((std::mem::take(line), style));
            }
            line.clear();
        };
        for &k in &self.idx {
            let b = band_of(k);
            match coord(k) {
                None => flush(&mut line, band),
                Some(c) => {
                    if b != band && !line.is_empty() {
                        // The new band starts where the old one ends: no gap.
                        let joint = line[line.len() - 1].clone();
                        flush(&mut line, band);
                        line.push(joint);
                    }
                    band = b;
                    line.push(c);
                }
            }
        }
        flush(&mut line, band);
        curve
    }

    fn finite(v: &[f64]) -> bool {
        v.iter().all(|x| x.is_finite())
    }

    fn draw_time_series(&self, area: &DrawingArea<BitMapBackend<'_>, Shift>) -> DrawResult {
        let t = &self.traj.time;
        let tr = padded_range(self.idx.iter().map(|&k| t[k]));
        let tr = (tr.start + (tr.end - tr.start) / 27.0)..(tr.end - (tr.end - tr.start) / 27.0);
        let mut chart = ChartBuilder::on(area)
            .caption(&self.title, self.font(30.0))
            .margin(self.px(24.0))
            .x_label_area_size(self.px(60.0))
            .y_label_area_size(self.px(90.0))
            .build_cartesian_2d(tr, self.range(0))
            .map_err(s)?;
        self.configure_mesh_2d(&mut chart, "t", self.name(0))?;
        draw_curve!(
            chart,
            self.curve(
                |k| {
                    let p = [t[k], self.value(k, 0)];
                    Self::finite(&p).then_some((p[0], p[1]))
                },
                false,
            )
        )
    }

    fn draw_2d(&self, area: &DrawingArea<BitMapBackend<'_>, Shift>) -> DrawResult {
        let mut chart = ChartBuilder::on(area)
            .caption(&self.title, self.font(30.0))
            .margin(self.px(24.0))
            .x_label_area_size(self.px(60.0))
            .y_label_area_size(self.px(90.0))
            .build_cartesian_2d(self.range(0), self.range(1))
            .map_err(s)?;
        self.configure_mesh_2d(&mut chart, self.name(0), self.name(1))?;
        draw_curve!(
            chart,
            self.curve(
                |k| {
                    let p = [self.value(k, 0), self.value(k, 1)];
                    Self::finite(&p).then_some((p[0], p[1]))
                },
                true,
            )
        )
    }

    fn configure_mesh_2d(
        &self,
        chart: &mut ChartContext<
            '_,
            BitMapBackend<'_>,
            Cartesian2d<
                plotters::coord::types::RangedCoordf64,
                plotters::coord::types::RangedCoordf64,
            >,
        >,
        x: &str,
        y: &str,
    ) -> DrawResult {
        let (xr, yr) = (chart.x_range(), chart.y_range());
        let (sx, sy) = (xr.end - xr.start, yr.end - yr.start);
        chart
            .configure_mesh()
            .x_desc(x)
            .y_desc(y)
            .axis_desc_style(self.font(24.0))
            .label_style(self.font(17.0))
            .x_label_formatter(&|v| fmt_tick(*v, sx))
            .y_label_formatter(&|v| fmt_tick(*v, sy))
            .bold_line_style(BLACK.mix(0.12))
            .light_line_style(BLACK.mix(0.04))
            .axis_style(BLACK.mix(0.6))
            .x_labels(8)
            .y_labels(8)
            .draw()
            .map_err(s)
    }

    /// 3-D view of the chosen components (a, b, c), c vertical.
    ///
    /// plotters' 3-D frame (X, Y up, Z) has the opposite handedness of the usual (a, b, c) with
    /// c up when mapped as (a, c, b); mapping (X, Y, Z) = (b, c, a) keeps the picture
    /// right-handed (a chaotic attractor and its mirror image differ).
    fn draw_3d(&self, area: &DrawingArea<BitMapBackend<'_>, Shift>) -> DrawResult {
        let (ra, rb, rc) = (self.range(0), self.range(1), self.range(2));
        let mut chart = ChartBuilder::on(area)
            .caption(&self.title, self.font(30.0))
            .margin(self.px(20.0))
            .build_cartesian_3d(rb.clone(), rc.clone(), ra.clone())
            .map_err(s)?;
        chart.with_projection(|mut p| {
            // Seen from the front of the (a, b) quadrant, slightly from above: a to the right
            // and towards the viewer, b to the right and away, c up.
            p.yaw = -0.9;
            p.pitch = 0.3;
            p.scale = 0.78;
            p.into_matrix()
        });
        chart
            .configure_axes()
            .label_style(self.font(15.0).color(&BLACK.mix(0.75)))
            .tick_size(self.px(6.0) as i32)
            .x_labels(6)
            .y_labels(6)
            .z_labels(6)
            .max_light_lines(2)
            .light_grid_style(BLACK.mix(0.04))
            .bold_grid_style(BLACK.mix(0.12))
            .axis_panel_style(RGBColor(246, 246, 250).mix(0.6))
            .x_formatter(&|v| fmt_tick(*v, rb.end - rb.start))
            .y_formatter(&|v| fmt_tick(*v, rc.end - rc.start))
            .z_formatter(&|v| fmt_tick(*v, ra.end - ra.start))
            .draw()
            .map_err(s)?;
        draw_curve!(
            chart,
            self.curve(
                |k| {
                    let p = [self.value(k, 1), self.value(k, 2), self.value(k, 0)];
                    Self::finite(&p).then_some((p[0], p[1], p[2]))
                },
                true,
            )
        )?;

        // Axis names, placed in screen space next to the edges plotters labels: the lowest
        // bottom edge for the two horizontal axes, the leftmost vertical edge for the vertical.
        let spec = chart.as_coord_spec();
        let base = area.get_base_pixel();
        let to_px = |p: (f64, f64, f64)| {
            let (x, y) = spec.translate(&p);
            (f64::from(x - base.0), f64::from(y - base.1))
        };
        let (x, y, z) = (&rb, &rc, &ra);
        let centre = to_px((
            (x.start + x.end) / 2.0,
            (y.start + y.end) / 2.0,
            (z.start + z.end) / 2.0,
        ));
        let lowest = |ends: [[(f64, f64, f64); 2]; 2]| {
            let mids = ends.map(|[p, q]| {
                let (p, q) = (to_px(p), to_px(q));
                ((p.0 + q.0) / 2.0, (p.1 + q.1) / 2.0)
            });
            if mids[0].1 >= mids[1].1 {
                mids[0]
            } else {
                mids[1]
            }
        };
        let out = |m: (f64, f64), dist: f64| {
            let (dx, dy) = (m.0 - centre.0, m.1 - centre.1);
            let norm = dx.hypot(dy).max(1.0);
            let d = f64::from(self.px(dist));
            ((m.0 + d * dx / norm) as i32, (m.1 + d * dy / norm) as i32)
        };
        let x_mid = lowest([
            [(x.start, y.start, z.start), (x.end, y.start, z.start)],
            [(x.start, y.start, z.end), (x.end, y.start, z.end)],
        ]);
        let z_mid = lowest([
            [(x.start, y.start, z.start), (x.start, y.start, z.end)],
            [(x.end, y.start, z.start), (x.end, y.start, z.end)],
        ]);
        let top = [x.start, x.end]
            .into_iter()
            .flat_map(|a| [z.start, z.end].map(|c| to_px((a, y.end, c))))
            .min_by(|p, q| p.0.total_cmp(&q.0))
            .unwrap_or(centre);
        let style = self.font(24.0).pos(Pos::new(HPos::Center, VPos::Center));
        let names = [
            (self.name(1), out(x_mid, 62.0)),
            (self.name(0), out(z_mid, 62.0)),
            (
                self.name(2),
                (top.0 as i32, top.1 as i32 - self.px(24.0) as i32),
            ),
        ];
        for (name, pos) in names {
            area.draw(&Text::new(name, pos, style.clone())).map_err(s)?;
        }
        Ok(())
    }

    fn draw_colour_bar(&self, area: &DrawingArea<BitMapBackend<'_>, Shift>) -> DrawResult {
        let (w, h) = area.dim_in_pixel();
        let (w, h) = (w as i32, h as i32);
        let top = h / 5;
        let bottom = h - h / 5;
        let x0 = w / 6;
        let x1 = x0 + self.px(22.0) as i32;
        for y in top..bottom {
            let f = f64::from(bottom - 1 - y) / f64::from((bottom - top - 1).max(1));
            area.draw(&Rectangle::new(
                [(x0, y), (x1, y + 1)],
                time_colour(f).filled(),
            ))
            .map_err(s)?;
        }
        area.draw(&Rectangle::new([(x0, top), (x1, bottom)], BLACK.mix(0.5)))
            .map_err(s)?;
        let t = &self.traj.time;
        let (t0, t1) = (t[0], t[t.len() - 1]);
        let grey = BLACK.mix(0.8);
        let label = self.font(16.0).color(&grey);
        let lx = x1 + self.px(6.0) as i32;
        area.draw(&Text::new(
            fmt_sig(t1),
            (lx, top - self.px(8.0) as i32),
            label.clone(),
        ))
        .map_err(s)?;
        area.draw(&Text::new(
            fmt_sig(t0),
            (lx, bottom - self.px(8.0) as i32),
            label,
        ))
        .map_err(s)?;
        area.draw(&Text::new(
            "t",
            (x0 + self.px(4.0) as i32, top - self.px(40.0) as i32),
            self.font(22.0),
        ))
        .map_err(s)?;
        Ok(())
    }
}

/// Draws particles of an H5MD frame (x–y plane; 1-D systems on a line) as disks of their
/// diameter, coloured by the local packing fraction (`colour` per particle, in [0, 1] after
/// scaling by `colour_max`), with a colour bar. Written atomically like every plot.
pub fn plot_particles(
    frame: &super::h5md::ParticleFrame,
    colour: &[f64],
    colour_label: &str,
    diameter: f64,
    png: &Path,
    size: (u32, u32),
) -> Result<()> {
    let invalid = |msg: String| IoError::invalid(png, msg);
    if !(64..=16384).contains(&size.0) || !(64..=16384).contains(&size.1) {
        return Err(invalid(format!(
            "image size {}×{} out of range (64..=16384 pixels per side)",
            size.0, size.1
        )));
    }
    draw_atomically(png, |tmp| {
        let root = BitMapBackend::new(tmp, size).into_drawing_area();
        root.fill(&WHITE).map_err(s)?;
        let bar_w = (size.0 / 8).max(60);
        let (main, bar) = root.split_horizontally(size.0 - bar_w);
        let w = 0.5 * frame.edges[0];
        let hy = if frame.dim >= 2 {
            0.5 * frame.edges[1]
        } else {
            1.0
        };
        let title = format!(
            "{}: {} particles, t = {}",
            if frame.system.is_empty() {
                "particles"
            } else {
                &frame.system
            },
            frame.n,
            fmt_num(frame.time)
        );
        let font_px = (size.1 as f64 / 30.0).max(12.0);
        let mut chart = ChartBuilder::on(&main)
            .caption(title, ("sans-serif", font_px))
            .margin(10)
            .x_label_area_size(font_px as u32 * 2)
            .y_label_area_size(font_px as u32 * 3)
            .build_cartesian_2d(-w..w, -hy..hy)
            .map_err(s)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("x")
            .y_desc(if frame.dim >= 2 { "y" } else { "" })
            .draw()
            .map_err(s)?;
        // disk radius in pixels from the x scale
        let plot_w = chart.plotting_area().dim_in_pixel().0 as f64;
        let r_px = ((0.5 * diameter / (2.0 * w)) * plot_w).max(1.0) as i32;
        let (lo, hi) = (0.0, colour.iter().cloned().fold(1e-12, f64::max));
        chart
            .draw_series((0..frame.n).map(|i| {
                let px = frame.x[i * frame.dim];
                let py = if frame.dim >= 2 {
                    frame.x[i * frame.dim + 1]
                } else {
                    0.0
                };
                let c = time_colour((colour[i] - lo) / (hi - lo));
                Circle::new((px, py), r_px, c.filled())
            }))
            .map_err(s)?;
        // colour bar
        let mut cb = ChartBuilder::on(&bar)
            .margin_top(font_px as u32 * 3)
            .margin_bottom(font_px as u32 * 3)
            .y_label_area_size(font_px as u32 * 3)
            .caption(colour_label, ("sans-serif", font_px * 0.8))
            .build_cartesian_2d(0.0..1.0, lo..hi)
            .map_err(s)?;
        cb.configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .draw()
            .map_err(s)?;
        cb.draw_series((0..100).map(|b| {
            let (a, z) = (
                lo + (hi - lo) * b as f64 / 100.0,
                lo + (hi - lo) * (b + 1) as f64 / 100.0,
            );
            Rectangle::new(
                [(0.0, a), (1.0, z)],
                time_colour((b as f64 + 0.5) / 100.0).filled(),
            )
        }))
        .map_err(s)?;
        root.present().map_err(s)
    })
}

/// Line and marker colours of the multi-series plots (colour-blind-safe order).
const PALETTE: [RGBColor; 10] = [
    RGBColor(49, 104, 172),
    RGBColor(214, 96, 36),
    RGBColor(68, 1, 84),
    RGBColor(0, 150, 110),
    RGBColor(200, 30, 90),
    RGBColor(120, 120, 120),
    RGBColor(230, 170, 0),
    RGBColor(90, 180, 230),
    RGBColor(140, 80, 30),
    RGBColor(0, 0, 0),
];

/// Curves: each named series of (x, y), written atomically to `png`.
pub fn plot_curves(
    png: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(&str, Vec<(f64, f64)>)],
) -> Result<()> {
    let pts: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.1.iter().copied())
        .filter(|p| p.1.is_finite())
        .collect();
    if pts.is_empty() {
        return Err(IoError::Plot {
            path: png.to_path_buf(),
            msg: "no finite values to plot".into(),
        });
    }
    let (x0, x1) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |a, p| {
        (a.0.min(p.0), a.1.max(p.0))
    });
    let (y0, y1) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |a, p| {
        (a.0.min(p.1), a.1.max(p.1))
    });
    let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
    let pad = if y1 > y0 {
        0.05 * (y1 - y0)
    } else {
        0.5 * y0.abs().max(1e-12)
    };
    let (y0, y1) = (y0 - pad, y1 + pad);
    draw_atomically(png, |tmp| {
        let root = BitMapBackend::new(tmp, (900, 600)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .draw()
            .map_err(|e| e.to_string())?;
        for (k, (name, data)) in series.iter().enumerate() {
            let c = PALETTE[k % PALETTE.len()];
            let data: Vec<(f64, f64)> = data.iter().copied().filter(|p| p.1.is_finite()).collect();
            chart
                .draw_series(LineSeries::new(data, c.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// Horizontal bar chart of named values (e.g. a median per model), written atomically to `png`;
/// non-finite values are drawn as empty bars.
pub fn plot_bars(png: &Path, title: &str, value_label: &str, bars: &[(String, f64)]) -> Result<()> {
    if bars.is_empty() {
        return Err(IoError::Plot {
            path: png.to_path_buf(),
            msg: "no bars to draw".into(),
        });
    }
    let top = bars
        .iter()
        .map(|b| b.1)
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let top = if top > 0.0 { 1.1 * top } else { 1.0 };
    let n = bars.len();
    draw_atomically(png, |tmp| {
        let root = BitMapBackend::new(tmp, (900, 120 + 40 * n as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(s)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(170)
            .build_cartesian_2d(0.0..top, (0..n.saturating_sub(1)).into_segmented())
            .map_err(s)?;
        chart
            .configure_mesh()
            .x_desc(value_label)
            .y_labels(n)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => bars
                    .get(n - 1 - *i)
                    .map(|b| b.0.clone())
                    .unwrap_or_default(),
                SegmentValue::Last => String::new(),
            })
            .disable_y_mesh()
            .draw()
            .map_err(s)?;
        for (i, (_, v)) in bars.iter().enumerate() {
            if !v.is_finite() {
                continue;
            }
            let row = n - 1 - i;
            let c = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(row)),
                        (*v, SegmentValue::Exact(row + 1)),
                    ],
                    c.mix(0.8).filled(),
                )))
                .map_err(s)?;
        }
        root.present().map_err(s)
    })
}

/// Scatter plot of named point sets (one colour each), optionally with a logarithmic x axis
/// (points with x ≤ 0 are then left out), written atomically to `png`.
pub fn plot_scatter(
    png: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(&str, Vec<(f64, f64)>)],
    log_x: bool,
) -> Result<()> {
    let keep = |p: &(f64, f64)| p.0.is_finite() && p.1.is_finite() && (!log_x || p.0 > 0.0);
    let pts: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.1.iter().copied())
        .filter(keep)
        .collect();
    if pts.is_empty() {
        return Err(IoError::Plot {
            path: png.to_path_buf(),
            msg: "no finite points to plot".into(),
        });
    }
    let fold = |f: fn(&(f64, f64)) -> f64| {
        pts.iter()
            .map(f)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |a, v| {
                (a.0.min(v), a.1.max(v))
            })
    };
    let (x0, x1) = fold(|p| p.0);
    let (y0, y1) = fold(|p| p.1);
    let (y0, y1) = if y1 > y0 {
        (y0 - 0.05 * (y1 - y0), y1 + 0.05 * (y1 - y0))
    } else {
        (y0 - 1.0, y1 + 1.0)
    };
    draw_atomically(png, |tmp| {
        let root = BitMapBackend::new(tmp, (900, 650)).into_drawing_area();
        root.fill(&WHITE).map_err(s)?;
        let mut builder = ChartBuilder::on(&root);
        builder
            .caption(title, ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60);
        macro_rules! draw_points {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_desc(x_label)
                    .y_desc(y_label)
                    .x_label_formatter(&|v: &f64| {
                        if log_x {
                            format!("{v:.0e}")
                        } else {
                            format!("{v}")
                        }
                    })
                    .draw()
                    .map_err(s)?;
                for (k, (name, data)) in series.iter().enumerate() {
                    let c = PALETTE[k % PALETTE.len()];
                    let data: Vec<(f64, f64)> = data.iter().copied().filter(keep).collect();
                    chart
                        .draw_series(
                            data.into_iter()
                                .map(|p| Circle::new(p, 3, c.mix(0.7).filled())),
                        )
                        .map_err(s)?
                        .label(*name)
                        .legend(move |(x, y)| Circle::new((x + 10, y), 4, c.filled()));
                }
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .draw()
                    .map_err(s)?;
            }};
        }
        if log_x {
            let x1 = if x1 > x0 { x1 } else { x0 * 10.0 };
            draw_points!(builder
                .build_cartesian_2d((x0 * 0.9..x1 * 1.1).log_scale(), y0..y1)
                .map_err(s)?);
        } else {
            let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
            draw_points!(builder.build_cartesian_2d(x0..x1, y0..y1).map_err(s)?);
        }
        root.present().map_err(s)
    })
}
