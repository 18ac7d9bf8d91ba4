//! Particle runs over MPI ranks (feature `mpi`): `mpirun -np K phaseflow simulate MODEL …`.
//!
//! The box is cut into a Cartesian grid of sub-boxes ([`Grid`]), one per rank. A rank's
//! [`Decomposed`] replica holds its own particles (storage slots `0..owned`, in cell order) and,
//! behind them, ghost copies of the other ranks' particles within cut-off + skin of its sub-box.
//! Per step (LAMMPS's `forward_comm`): the ghosts' positions arrive from their owners (one
//! message per neighbouring rank and direction), the rank steps its own particles with the
//! single-process kernel, and one `MPI_Allreduce` (max) of three numbers gives every rank the
//! largest displacement since the list build, the largest force and the largest image counter.
//! At a neighbour-list rebuild (the single-process trigger: some particle moved more than half
//! the skin — the same steps, since the maximum is global) particles migrate to the rank owning
//! their position and the ghost lists are rebuilt (`exchange` and `borders`, two
//! `MPI_Alltoallv`). No force is sent back: each owned particle gathers its force from its list.
//!
//! **Bit-identical to one process.** A particle's noise is a function of (seed, replica, step,
//! id), its force the sum over its list neighbours in particle-id order (pairs beyond the cut-off
//! add exact zeros), and its update the single-process kernel: the positions, images and
//! propulsion after any number of steps are those of a one-process run, bit for bit, whatever
//! K and the grid. The root gathers each frame and writes the H5MD file as one process does
//! (measured in `benches/mpi_scaling.sh`: the gather is a small part of a frame interval), so
//! the file is the same as well. The frame's pair statistics (g(r), local packing, dense
//! clusters) are counted on every rank and added up on the root
//! ([`Replica::pair_counts`](super::run::Replica::pair_counts)): integer counts, the
//! one-process ones exactly.

use super::cells::CellList;
use super::decomposition::Grid;
use super::model::ParticleModel;
use super::neighbours::VerletList;
use super::observables::{count_pairs, LocalCounts, PairCounts, PairStatistics, Share};
use super::run::{Engine, Replica, Traffic};
use super::sim::{permute, skin, ParticleState, Simulation};
use mpi::collective::SystemOperation;
use mpi::datatype::{Partition, PartitionMut};
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use mpi::Count;

/// The ranks of an MPI communicator as an [`Engine`]: replicas are [`Decomposed`] over the
/// grid chosen (and checked) by [`Mpi::new`].
pub struct Mpi {
    comm: SimpleCommunicator,
    grid: Grid,
    width: f64,
}

impl Mpi {
    /// The engine for `model` on `comm`'s ranks: the rank grid from the rank count and the box
    /// (or `grid`, P_1 × … × P_d), refused — on every rank, before any step — when a sub-box
    /// would be thinner than the ghost layer (cut-off + skin).
    pub fn new(
        comm: SimpleCommunicator,
        model: &ParticleModel,
        grid: Option<&[usize]>,
    ) -> Result<Mpi, String> {
        let width = model.pair.map_or(0.0, |p| p.cutoff() + skin(model, &p));
        // the root scatters and gathers whole frames with MPI's 32-bit counts
        let rec = migrant_len(model.dim, model.propulsion_dim());
        let most = Count::MAX as usize / rec;
        if model.n > most {
            return Err(format!(
                "{} particles: under MPI the root scatters and gathers whole frames of {rec} values per particle, and MPI counts are 32-bit: at most {most} particles",
                model.n
            ));
        }
        let g = Grid::new(
            comm.size() as usize,
            model.dim,
            model.bx.length,
            width,
            grid,
        )?;
        Ok(Mpi {
            comm,
            grid: g,
            width,
        })
    }

    /// The rank grid (ranks per direction).
    pub fn grid(&self) -> &Grid {
        &self.grid
    }
}

impl Engine for Mpi {
    type Replica = Decomposed;

    fn is_root(&self) -> bool {
        self.comm.rank() == 0
    }

    fn any(&self, flag: bool) -> bool {
        any_rank(&self.comm, flag)
    }

    fn share(&self, value: u64) -> u64 {
        let mut v = value;
        self.comm.process_at_rank(0).broadcast_into(&mut v);
        v
    }

    fn ranks(&self) -> usize {
        self.comm.size() as usize
    }

    fn replica(
        &self,
        model: &ParticleModel,
        state: Option<ParticleState>,
        seed: u64,
        replica: u32,
    ) -> Decomposed {
        Decomposed::new(
            self.comm.duplicate(),
            self.grid.clone(),
            self.width,
            model,
            state,
            seed,
            replica,
        )
    }
}

/// Values per migrating particle: id, position (d), image (d), propulsion (gd).
fn migrant_len(d: usize, gd: usize) -> usize {
    1 + 2 * d + gd
}

/// Appends one particle's record (layout of [`migrant_len`]; ids and image counters are exact
/// in f64) to `out`.
fn push_record(out: &mut Vec<f64>, id: u32, x: &[f64], image: &[i32], g: &[f64]) {
    out.push(id as f64);
    out.extend_from_slice(x);
    out.extend(image.iter().map(|&i| i as f64));
    out.extend_from_slice(g);
}

/// The parts of record `p` in `d` dimensions: (id, position, image counters, propulsion).
fn split_record(p: &[f64], d: usize) -> (u32, &[f64], impl Iterator<Item = i32> + '_, &[f64]) {
    let image = p[1 + d..1 + 2 * d].iter().map(|&v| v as i32);
    (p[0] as u32, &p[1..1 + d], image, &p[1 + 2 * d..])
}

/// Appends the particles of `records` (whole records) to a rank's slot arrays.
fn append_records(
    records: &[f64],
    d: usize,
    gd: usize,
    tag: &mut Vec<u32>,
    x: &mut Vec<f64>,
    image: &mut Vec<i32>,
    g: &mut Vec<f64>,
) {
    for p in records.chunks_exact(migrant_len(d, gd)) {
        let (id, xp, im, gp) = split_record(p, d);
        tag.push(id);
        x.extend_from_slice(xp);
        image.extend(im);
        g.extend_from_slice(gp);
    }
}

/// Whether `flag` is set on any rank of `comm` (collective).
fn any_rank(comm: &SimpleCommunicator, flag: bool) -> bool {
    let mut out = 0u8;
    comm.all_reduce_into(&(flag as u8), &mut out, SystemOperation::max());
    out != 0
}

/// One rank's share of a replica (see the module documentation).
pub struct Decomposed {
    comm: SimpleCommunicator,
    grid: Grid,
    rank: usize,
    /// Local storage: own particles in slots `0..owned`, ghosts after them (positions and ids
    /// only; images and propulsion are kept for own particles).
    sim: Simulation,
    owned: usize,
    /// Ghost-layer width: cut-off + skin (0 without pair forces).
    width: f64,
    skin: f64,
    /// The other ranks of the 3^d stencil (ascending).
    neighbours: Vec<usize>,
    /// Per neighbour: own slots whose positions it needs every step, and the buffer they are
    /// packed into.
    send: Vec<Vec<u32>>,
    send_buf: Vec<Vec<f64>>,
    /// Per neighbour: the ghost slots `a..b` its particles fill.
    recv: Vec<(usize, usize)>,
    /// Rebuilds so far.
    rebuilds: u64,
    /// Values to send per rank at a rebuild (kept between rebuilds).
    out: Vec<Vec<f64>>,
    /// Largest squared displacement of any particle since the last build, over all ranks
    /// (∞: rebuild before the next step).
    disp2: f64,
    image_max: f64,
    /// The cell order of own particles at a rebuild (memory locality of the force loop).
    cells: Option<CellList>,
    scratch: (Vec<f64>, Vec<i32>, Vec<f64>, Vec<u32>),
}

impl Decomposed {
    /// This rank's share of a replica at `state` (collective: given on rank 0, which sends each
    /// rank the particles its sub-box holds).
    fn new(
        comm: SimpleCommunicator,
        grid: Grid,
        width: f64,
        model: &ParticleModel,
        state: Option<ParticleState>,
        seed: u64,
        replica: u32,
    ) -> Decomposed {
        let (d, gd) = (model.dim, model.propulsion_dim());
        let rank = comm.rank() as usize;
        let rec = migrant_len(d, gd);
        // the root sends each rank its particles (one MPI_Scatterv: only the root holds all N)
        let root = comm.process_at_rank(0);
        let mut count: Count = 0;
        let mut mine: Vec<f64>;
        let mut step = 0u64;
        if let Some(full) = state {
            let size = comm.size() as usize;
            let mut out = vec![Vec::new(); size];
            for i in 0..model.n {
                let xi = &full.x[i * d..(i + 1) * d];
                push_record(
                    &mut out[grid.owner(xi)],
                    i as u32,
                    xi,
                    &full.image[i * d..(i + 1) * d],
                    &full.g[i * gd..(i + 1) * gd],
                );
            }
            let counts: Vec<Count> = out.iter().map(|v| v.len() as Count).collect();
            root.scatter_into_root(&counts[..], &mut count);
            mine = vec![0.0; count as usize];
            let displs = prefix(&counts);
            let all = out.concat();
            let p = Partition::new(&all[..], &counts[..], &displs[..]);
            root.scatter_varcount_into_root(&p, &mut mine[..]);
            step = full.step;
        } else {
            root.scatter_into(&mut count);
            mine = vec![0.0; count as usize];
            root.scatter_varcount_into(&mut mine[..]);
        }
        root.broadcast_into(&mut step);
        let owned = mine.len() / rec;
        let mut local = ParticleState {
            x: Vec::with_capacity(owned * d),
            image: Vec::with_capacity(owned * d),
            g: Vec::with_capacity(owned * gd),
            step,
        };
        let mut tags = Vec::with_capacity(owned);
        let (x, image, g) = (&mut local.x, &mut local.image, &mut local.g);
        append_records(&mine, d, gd, &mut tags, x, image, g);
        drop(mine);
        // cells over this rank's sub-box and ghost layer only (not the whole box: a rank's
        // memory and rebuild time scale with its particles)
        let (mut lo, mut hi) = grid.bounds(rank);
        let mut clipped = [false; 3];
        for k in 0..model.dim {
            lo[k] -= width;
            hi[k] += width;
            clipped[k] = grid.ranks[k] > 1;
        }
        let skin = model.pair.map_or(0.0, |p| skin(model, &p));
        let nlist = model
            .pair
            .map(|p| VerletList::new_region(&model.bx, p.cutoff(), skin, lo, hi, clipped));
        let mut sim = Simulation::with_list(model.clone(), local, seed, replica, nlist);
        sim.tag = tags;
        sim.x_next = vec![0.0; sim.x.len()];
        // (forces of all N particles are kept only for ParticleDrift; not needed here)
        sim.force = Vec::new();
        let cells = model
            .pair
            .map(|_| CellList::new_region(&model.bx, width, lo, hi, clipped));
        let neighbours = grid.neighbours(rank);
        let k = neighbours.len();
        Decomposed {
            comm,
            rank,
            owned,
            sim,
            width,
            skin,
            send: vec![Vec::new(); k],
            send_buf: vec![Vec::new(); k],
            recv: vec![(0, 0); k],
            neighbours,
            grid,
            rebuilds: 0,
            out: Vec::new(),
            disp2: f64::INFINITY,
            image_max: 0.0,
            cells,
            scratch: Default::default(),
        }
    }

    /// Own particles of this rank.
    pub fn owned(&self) -> usize {
        self.owned
    }

    /// Ghost particles held by this rank.
    pub fn ghosts(&self) -> usize {
        self.sim.tag.len() - self.owned
    }

    /// Sends `out[q]` (values, grouped by destination rank) to every rank q and returns what
    /// arrived, grouped by source rank, with the count from each (one `MPI_Alltoall` of the
    /// counts and one `MPI_Alltoallv`).
    fn exchange(&self, out: &[Vec<f64>]) -> (Vec<f64>, Vec<Count>) {
        let size = self.comm.size() as usize;
        let counts: Vec<Count> = out.iter().map(|v| v.len() as Count).collect();
        let mut rcounts = vec![0 as Count; size];
        self.comm.all_to_all_into(&counts[..], &mut rcounts[..]);
        let displs = prefix(&counts);
        let rdispls = prefix(&rcounts);
        let send: Vec<f64> = out.concat();
        let total: usize = rcounts.iter().map(|&c| c as usize).sum();
        let mut recv = vec![0.0f64; total];
        {
            let sp = Partition::new(&send[..], &counts[..], &displs[..]);
            let mut rp = PartitionMut::new(&mut recv[..], &rcounts[..], &rdispls[..]);
            self.comm.all_to_all_varcount_into(&sp, &mut rp);
        }
        (recv, rcounts)
    }

    /// Migration, re-sort into cell order, ghost lists and the neighbour list (at a rebuild).
    fn rebuild(&mut self) {
        let m = &self.sim.model;
        let (d, gd) = (m.dim, m.propulsion_dim());
        let size = self.comm.size() as usize;
        // migration: own particles whose position now lies in another rank's sub-box leave;
        // the others are compacted in place (no allocation once the buffers have their size)
        let mut out = std::mem::take(&mut self.out);
        out.resize_with(size, Vec::new);
        out.iter_mut().for_each(Vec::clear);
        let (mut x, mut image, mut g, mut tag) = (
            std::mem::take(&mut self.sim.x),
            std::mem::take(&mut self.sim.image),
            std::mem::take(&mut self.sim.g),
            std::mem::take(&mut self.sim.tag),
        );
        let mut kept = 0;
        for s in 0..self.owned {
            let o = self.grid.owner(&x[s * d..(s + 1) * d]);
            if o == self.rank {
                x.copy_within(s * d..(s + 1) * d, kept * d);
                image.copy_within(s * d..(s + 1) * d, kept * d);
                g.copy_within(s * gd..(s + 1) * gd, kept * gd);
                tag[kept] = tag[s];
                kept += 1;
            } else {
                push_record(
                    &mut out[o],
                    tag[s],
                    &x[s * d..(s + 1) * d],
                    &image[s * d..(s + 1) * d],
                    &g[s * gd..(s + 1) * gd],
                );
            }
        }
        x.truncate(kept * d);
        image.truncate(kept * d);
        g.truncate(kept * gd);
        tag.truncate(kept);
        let (arrived, _) = self.exchange(&out);
        append_records(&arrived, d, gd, &mut tag, &mut x, &mut image, &mut g);
        self.owned = tag.len();
        // own particles in cell order (the order does not change the results: forces are
        // summed in id order, the noise is drawn by id)
        if let Some(cells) = self.cells.as_mut() {
            cells.build(&x);
            let order = &cells.order;
            let sc = &mut self.scratch;
            permute(&mut x, order, d, &mut sc.0);
            permute(&mut image, order, d, &mut sc.1);
            permute(&mut g, order, gd, &mut sc.2);
            permute(&mut tag, order, 1, &mut sc.3);
        }
        // ghosts: own particles within the ghost width of a neighbour's sub-box
        out.iter_mut().for_each(Vec::clear);
        if self.width > 0.0 {
            for (&nb, send) in self.neighbours.iter().zip(&mut self.send) {
                send.clear();
                let (lo, hi) = self.grid.bounds(nb);
                for s in 0..self.owned {
                    let xs = &x[s * d..(s + 1) * d];
                    if self.grid.near_box(xs, &lo, &hi, self.width) {
                        send.push(s as u32);
                        out[nb].push(tag[s] as f64);
                        out[nb].extend_from_slice(xs);
                    }
                }
            }
        }
        let (arrived, rcounts) = self.exchange(&out);
        self.out = out;
        let mut at = self.owned;
        let mut starts = vec![0usize; size + 1];
        for (r, &c) in rcounts.iter().enumerate() {
            starts[r + 1] = starts[r] + c as usize / (1 + d);
        }
        for (q, &nb) in self.neighbours.iter().enumerate() {
            let cnt = starts[nb + 1] - starts[nb];
            self.recv[q] = (at, at + cnt);
            at += cnt;
        }
        debug_assert_eq!(at - self.owned, arrived.len() / (1 + d));
        for p in arrived.chunks_exact(1 + d) {
            tag.push(p[0] as u32);
            x.extend_from_slice(&p[1..]);
        }
        self.sim.x_next.resize(x.len(), 0.0);
        self.sim.x = x;
        self.sim.image = image;
        self.sim.g = g;
        self.sim.tag = tag;
        let bx = self.sim.model.bx;
        if let Some(list) = self.sim.nlist.as_mut() {
            list.build_partial(&self.sim.x, &bx, &self.sim.tag, self.owned);
        }
        self.disp2 = 0.0;
        self.rebuilds += 1;
    }

    /// The ghosts' current positions from their owners (one message per neighbouring rank each
    /// way; nothing where no ghost is shared).
    fn forward(&mut self) {
        let d = self.sim.model.dim;
        for (send, buf) in self.send.iter().zip(&mut self.send_buf) {
            buf.clear();
            for &s in send {
                let s = s as usize;
                buf.extend_from_slice(&self.sim.x[s * d..(s + 1) * d]);
            }
        }
        let comm = &self.comm;
        let (neighbours, bufs, recv) = (&self.neighbours, &self.send_buf, &self.recv);
        let x = &mut self.sim.x;
        mpi::request::scope(|scope| {
            let mut pending = Vec::with_capacity(neighbours.len());
            for (&nb, buf) in neighbours.iter().zip(bufs) {
                if !buf.is_empty() {
                    pending.push(
                        comm.process_at_rank(nb as i32)
                            .immediate_send(scope, &buf[..]),
                    );
                }
            }
            for (&nb, &(a, b)) in neighbours.iter().zip(recv) {
                if b > a {
                    comm.process_at_rank(nb as i32)
                        .receive_into(&mut x[a * d..b * d]);
                }
            }
            for p in pending {
                p.wait();
            }
        });
    }
}

fn prefix(counts: &[Count]) -> Vec<Count> {
    counts
        .iter()
        .scan(0 as Count, |acc, &c| {
            let at = *acc;
            *acc += c;
            Some(at)
        })
        .collect()
}

impl Replica for Decomposed {
    fn step(&mut self) {
        if self.disp2 > 0.25 * self.skin * self.skin {
            self.rebuild();
        } else {
            self.forward();
        }
        let (disp, fmax) = self.sim.advance_slots(self.owned);
        let d = self.sim.model.dim;
        let images = self.sim.image[..self.owned * d]
            .iter()
            .fold(0u32, |m, v| m.max(v.unsigned_abs()));
        let local = [disp, fmax, images as f64];
        let mut global = [0.0f64; 3];
        self.comm
            .all_reduce_into(&local[..], &mut global[..], SystemOperation::max());
        if self.sim.nlist.is_some() {
            self.disp2 = self.disp2.max(global[0]);
        } else {
            // no pair forces: no list, no ghosts, nothing to rebuild
            self.disp2 = 0.0;
        }
        // the global largest force, so the blow-up check sees what one process would
        self.sim.max_force = global[1];
        self.image_max = global[2];
    }

    fn step_count(&self) -> u64 {
        self.sim.step_count()
    }

    /// Every rank counts its own particles, with ghost copies of its neighbours' particles
    /// within [`PairStatistics::reach`] of its sub-box (sent for the frame: one
    /// `MPI_Alltoallv`); the root gathers the counts and adds them up, joining the dense
    /// clusters that cross sub-box borders by the ids of their border particles. Integer counts:
    /// the result is the one-process one exactly. Where a sub-box is thinner than the reach
    /// (a small box on many ranks), the root counts the gathered frame instead.
    fn pair_counts(
        &self,
        model: &ParticleModel,
        stats: &PairStatistics,
        gathered: &ParticleState,
    ) -> Option<PairCounts> {
        let root = self.comm.rank() == 0;
        if !self.grid.admits(stats.reach()) {
            return root.then(|| PairCounts::of(stats, &model.bx, &gathered.x));
        }
        let d = model.dim;
        let reach = stats.reach();
        let size = self.comm.size() as usize;
        let mut out = vec![Vec::new(); size];
        for &nb in &self.neighbours {
            let (lo, hi) = self.grid.bounds(nb);
            for s in 0..self.owned {
                let xs = &self.sim.x[s * d..(s + 1) * d];
                if self.grid.near_box(xs, &lo, &hi, reach) {
                    out[nb].push(self.sim.tag[s] as f64);
                    out[nb].extend_from_slice(xs);
                }
            }
        }
        let (arrived, _) = self.exchange(&out);
        drop(out);
        let mut x = self.sim.x[..self.owned * d].to_vec();
        let mut tag = self.sim.tag[..self.owned].to_vec();
        for p in arrived.chunks_exact(1 + d) {
            tag.push(p[0] as u32);
            x.extend_from_slice(&p[1..]);
        }
        let share = Share {
            grid: &self.grid,
            rank: self.rank,
            neighbours: &self.neighbours,
            tag: &tag,
        };
        let words = count_pairs(stats, &model.bx, &x, self.owned, Some(&share)).to_words();
        let at = self.comm.process_at_rank(0);
        if !root {
            at.gather_into(&(words.len() as Count));
            at.gather_varcount_into(&words[..]);
            return None;
        }
        let mut counts = vec![0 as Count; size];
        at.gather_into_root(&(words.len() as Count), &mut counts[..]);
        let displs = prefix(&counts);
        let mut all = vec![0u64; counts.iter().map(|&c| c as usize).sum()];
        {
            let mut p = PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
            at.gather_varcount_into_root(&words[..], &mut p);
        }
        let parts: Vec<LocalCounts> = counts
            .iter()
            .zip(&displs)
            .map(|(&c, &o)| LocalCounts::from_words(&all[o as usize..(o + c) as usize], stats))
            .collect();
        Some(LocalCounts::total(&parts))
    }

    fn traffic(&self) -> Option<Traffic> {
        let d = self.sim.model.dim;
        let sent: usize = self.send.iter().map(|s| s.len()).sum();
        let messages = self.send.iter().filter(|s| !s.is_empty()).count();
        let local = [self.ghosts() as f64, messages as f64, (sent * d * 8) as f64];
        let mut total = [0.0f64; 3];
        self.comm
            .all_reduce_into(&local[..], &mut total[..], SystemOperation::sum());
        let k = self.comm.size() as f64;
        Some(Traffic {
            grid: self.grid.ranks[..d].to_vec(),
            rebuilds: self.rebuilds,
            ghost_fraction: total[0] / self.sim.model.n as f64,
            messages_per_step: total[1] / k,
            bytes_per_step: total[2] / k,
            pair_statistics_on_ranks: PairStatistics::of_model(&self.sim.model)
                .map(|st| self.grid.admits(st.reach())),
        })
    }

    fn cancelled(&self, cancel: &crate::control::Cancel) -> bool {
        any_rank(&self.comm, cancel.is_cancelled())
    }

    fn max_force_displacement(&self) -> f64 {
        self.sim.max_force_displacement()
    }

    fn image_beyond(&self, limit: i32) -> Option<(usize, i64)> {
        if self.image_max <= limit.unsigned_abs() as f64 {
            return None;
        }
        let d = self.sim.model.dim;
        let lim = limit.unsigned_abs();
        let local = self.sim.image[..self.owned * d]
            .iter()
            .position(|v| v.unsigned_abs() > lim)
            .map_or(u64::MAX, |k| self.sim.tag[k / d] as u64);
        let mut first = 0u64;
        self.comm
            .all_reduce_into(&local, &mut first, SystemOperation::min());
        Some((first as usize, self.image_max as i64))
    }

    fn state(&self) -> ParticleState {
        let m = &self.sim.model;
        let (n, d, gd) = (m.n, m.dim, m.propulsion_dim());
        let rec = migrant_len(d, gd);
        let mut pack = Vec::with_capacity(self.owned * rec);
        for s in 0..self.owned {
            push_record(
                &mut pack,
                self.sim.tag[s],
                &self.sim.x[s * d..(s + 1) * d],
                &self.sim.image[s * d..(s + 1) * d],
                &self.sim.g[s * gd..(s + 1) * gd],
            );
        }
        let root = self.comm.process_at_rank(0);
        let step = self.sim.step_count();
        if self.comm.rank() != 0 {
            root.gather_into(&(pack.len() as Count));
            root.gather_varcount_into(&pack[..]);
            return ParticleState {
                x: Vec::new(),
                image: Vec::new(),
                g: Vec::new(),
                step,
            };
        }
        let size = self.comm.size() as usize;
        let mut counts = vec![0 as Count; size];
        root.gather_into_root(&(pack.len() as Count), &mut counts[..]);
        let displs = prefix(&counts);
        let mut all = vec![0.0f64; counts.iter().map(|&c| c as usize).sum()];
        {
            let mut p = PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
            root.gather_varcount_into_root(&pack[..], &mut p);
        }
        let mut st = ParticleState {
            x: vec![0.0; n * d],
            image: vec![0; n * d],
            g: vec![0.0; n * gd],
            step,
        };
        for p in all.chunks_exact(rec) {
            let (id, xp, im, gp) = split_record(p, d);
            let i = id as usize;
            st.x[i * d..(i + 1) * d].copy_from_slice(xp);
            for (slot, v) in st.image[i * d..(i + 1) * d].iter_mut().zip(im) {
                *slot = v;
            }
            st.g[i * gd..(i + 1) * gd].copy_from_slice(gp);
        }
        st
    }
}
